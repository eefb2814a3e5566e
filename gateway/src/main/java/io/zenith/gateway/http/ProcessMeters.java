package io.zenith.gateway.http;

import io.micrometer.core.instrument.Metrics;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * What every server process exposes besides its own figures: the JVM's (memory, GC, threads,
 * classes, CPU, uptime) and reactor-netty's HTTP server metrics, which reactor-netty records in
 * Micrometer's global registry: {@link #bind} adds the server's registry to it until closed.
 *
 * <p>Thread-safe.
 */
public final class ProcessMeters implements AutoCloseable {
  private final PrometheusMeterRegistry registry;
  private final JvmGcMetrics gc = new JvmGcMetrics();

  private ProcessMeters(PrometheusMeterRegistry registry) {
    this.registry = registry;
  }

  /** Binds the JVM's metrics to {@code registry} and makes it receive the HTTP server's. */
  public static ProcessMeters bind(PrometheusMeterRegistry registry) {
    ProcessMeters p = new ProcessMeters(registry);
    new JvmMemoryMetrics().bindTo(registry);
    p.gc.bindTo(registry);
    new JvmThreadMetrics().bindTo(registry);
    new ClassLoaderMetrics().bindTo(registry);
    new ProcessorMetrics().bindTo(registry);
    new UptimeMetrics().bindTo(registry);
    Metrics.addRegistry(registry);
    return p;
  }

  /** Stops the GC listener and detaches the registry from the global one. */
  @Override
  public void close() {
    Metrics.removeRegistry(registry);
    gc.close();
  }

  private static final Pattern ID = Pattern.compile("[0-9a-f]{32}");
  private static final Pattern NUMBER = Pattern.compile("[0-9]+");
  private static final Pattern WORD = Pattern.compile("[a-z][a-z0-9_]{0,31}");

  /** Distinct {@code uri} tag values kept; later unseen paths are tagged {@code other}. */
  static final int MAX_URI_TAGS = 64;

  /**
   * The {@code uri} tag of reactor-netty's HTTP server metrics: the path without its query, ids and
   * numbers replaced by {@code {id}} and {@code {n}}, anything else odd by {@code {x}}, and at most
   * {@link #MAX_URI_TAGS} distinct values (then {@code other}), so neither ids nor probes of random
   * paths grow the number of series.
   */
  public static Function<String, String> uriTags() {
    Map<String, Boolean> seen = new ConcurrentHashMap<>();
    return uri -> {
      String tag = template(uri);
      if (seen.containsKey(tag)) {
        return tag;
      }
      if (seen.size() >= MAX_URI_TAGS) {
        return "other";
      }
      seen.put(tag, Boolean.TRUE);
      return tag;
    };
  }

  /** {@code /v1/tenant/<id>/timeline?x=1} → {@code /v1/tenant/{id}/timeline}. */
  static String template(String uri) {
    int q = uri.indexOf('?');
    String path = q < 0 ? uri : uri.substring(0, q);
    StringBuilder b = new StringBuilder();
    for (String seg : path.split("/", -1)) {
      if (seg.isEmpty()) {
        continue;
      }
      b.append('/');
      if (ID.matcher(seg).matches()) {
        b.append("{id}");
      } else if (NUMBER.matcher(seg).matches()) {
        b.append("{n}");
      } else if (WORD.matcher(seg).matches()) {
        b.append(seg);
      } else {
        b.append("{x}");
      }
    }
    return b.isEmpty() ? "/" : b.toString();
  }
}
