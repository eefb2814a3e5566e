package io.zenith.gateway.pageserver;

import io.zenith.gateway.http.ApiException;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.File;
import java.io.IOException;
import java.io.Serial;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a tenant's root timeline comes to be, the one path that {@code zenith init} (the first
 * tenant, into a layer store no pageserver runs on) and the pageserver's {@code POST /v1/tenant}
 * with a {@code root_timeline_id} (every later tenant) share: a fresh {@code initdb} of stock
 * PostgreSQL 15 (data checksums on, user {@code postgres}, trust, UTF8, locale C) in a scratch
 * directory, imported ({@link DatadirImport}) as images at its shutdown checkpoint. Blocking;
 * stateless, so thread-safe.
 */
public final class RootTimeline {
  private static final Logger log = LoggerFactory.getLogger(RootTimeline.class);

  private RootTimeline() {}

  /** How long initdb may take before it is killed. */
  static final Duration INITDB_TIMEOUT = Duration.ofMinutes(3);

  /** initdb failed or could not run; the message is one line. */
  public static final class InitdbException extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;

    InitdbException(String message) {
      super(message);
    }
  }

  /** A fresh initdb's data directory in a scratch directory, deleted by {@link #close()}. */
  public record Initdb(Path scratch, Path data) implements AutoCloseable {
    @Override
    public void close() {
      deleteTree(scratch);
    }
  }

  /**
   * Runs initdb as PostgreSQL's OS user into a new scratch directory under the system temp
   * directory (PostgreSQL's user must reach it; a repository under a root-owned 0700 directory may
   * not be), bounded by {@link #INITDB_TIMEOUT}.
   *
   * @throws InitdbException with initdb's last line of output when it fails
   */
  public static Initdb initdb(PgDistribution pg) throws IOException {
    Path scratch = Files.createTempDirectory("zenith-initdb-");
    boolean ok = false;
    try {
      pg.createOwnedDirectory(scratch);
      Path data = scratch.resolve("data");
      Path out = scratch.resolve("initdb.out");
      Process p =
          pg.processBuilder(
                  "initdb",
                  List.of(
                      "-D",
                      data.toString(),
                      "--data-checksums",
                      "-U",
                      "postgres",
                      "-A",
                      "trust",
                      "-E",
                      "UTF8",
                      "--locale=C"))
              // from /: runuser's children warn about a cwd PostgreSQL's user cannot enter
              .directory(new File("/"))
              .redirectErrorStream(true)
              .redirectOutput(out.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .start();
      if (!p.waitFor(INITDB_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new InitdbException(
            "initdb did not finish within " + INITDB_TIMEOUT.toSeconds() + " s");
      }
      if (p.exitValue() != 0) {
        List<String> lines =
            Files.readString(out, StandardCharsets.UTF_8)
                .lines()
                .filter(l -> !l.isBlank())
                .toList();
        throw new InitdbException(
            "initdb failed: " + (lines.isEmpty() ? "no output" : lines.getLast().strip()));
      }
      ok = true;
      return new Initdb(scratch, data);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InitdbException("interrupted while running initdb");
    } finally {
      if (!ok) {
        deleteTree(scratch);
      }
    }
  }

  /**
   * Imports an initdb's data directory as root timeline {@code timeline} of {@code tenant}, which
   * must exist and not have it. Durable on return.
   */
  public static DatadirImport.Result importInto(
      LayerStore store, TenantId tenant, TimelineId timeline, Initdb initdb) throws IOException {
    return DatadirImport.run(store, tenant, timeline, initdb.data());
  }

  /** {@link #initdb} then {@link #importInto}; the scratch directory is gone on return. */
  public static DatadirImport.Result create(
      PgDistribution pg, LayerStore store, TenantId tenant, TimelineId timeline)
      throws IOException {
    try (Initdb db = initdb(pg)) {
      return importInto(store, tenant, timeline, db);
    }
  }

  /**
   * {@link #create} for {@code POST /v1/tenant} with a root timeline, in the tenant {@code tenant}
   * just created: on any failure {@code undo} deletes the tenant again, and a failed initdb or
   * import is a 500 naming the tenant.
   */
  static DatadirImport.Result createOrUndo(
      LayerStore store, TenantId tenant, TimelineId root, Runnable undo) {
    try {
      DatadirImport.Result r = create(PgDistribution.detect(), store, tenant, root);
      log.info("created tenant {} with root timeline {} at {}", tenant, root, r.lsn());
      return r;
    } catch (IOException | RuntimeException e) {
      try {
        undo.run();
      } catch (RuntimeException d) {
        e.addSuppressed(d);
      }
      if (e instanceof InitdbException || e instanceof DatadirImport.ImportException) {
        throw new ApiException(500, "cannot create tenant " + tenant + ": " + e.getMessage());
      }
      throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
    }
  }

  private static void deleteTree(Path root) {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot delete " + root + ": " + e.getMessage(), e);
    }
  }
}
