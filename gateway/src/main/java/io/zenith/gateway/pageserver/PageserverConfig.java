package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.gateway.config.Settings;
import io.zenith.layer.LayerStoreConfig;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The pageserver's settings, from {@code pageserver.toml} in its data directory. Every key is
 * optional; unknown keys are an error (a typo must not silently fall back to a default).
 *
 * <pre>
 * listen_http = "127.0.0.1:9898"       # management API and /metrics
 * listen_pg = "127.0.0.1:64000"        # libpq endpoint (basebackup)
 * id = "pageserver-1"
 * checkpoint_distance = "256MiB"       # freeze the in-memory layer at this size
 * checkpoint_timeout = "10m"           # ... or at this age
 * wait_lsn_timeout = "60s"             # how long a read waits for WAL it has not received
 * page_cache_size = "256MiB"           # materialized pages
 * walredo_processes = 2                # WAL-redo processes per tenant
 * walredo_timeout = "10s"              # one redo request
 * data_checksums = true                # as the computes' initdb (scratch clusters match it)
 * </pre>
 */
public record PageserverConfig(
    @JsonProperty("listen_http") String listenHttp,
    @JsonProperty("listen_pg") String listenPg,
    @JsonProperty("id") String id,
    @JsonProperty("checkpoint_distance") String checkpointDistance,
    @JsonProperty("checkpoint_timeout") String checkpointTimeout,
    @JsonProperty("wait_lsn_timeout") String waitLsnTimeout,
    @JsonProperty("page_cache_size") String pageCacheSize,
    @JsonProperty("walredo_processes") Integer walredoProcesses,
    @JsonProperty("walredo_timeout") String walredoTimeout,
    @JsonProperty("data_checksums") Boolean dataChecksums) {

  public static final String FILE_NAME = "pageserver.toml";

  public static final PageserverConfig DEFAULT =
      new PageserverConfig(
          "127.0.0.1:9898",
          "127.0.0.1:64000",
          "pageserver",
          "256MiB",
          "10m",
          "60s",
          "256MiB",
          2,
          "10s",
          true);

  /** Fills unset values from {@link #DEFAULT}. */
  public PageserverConfig withDefaults() {
    PageserverConfig d = DEFAULT;
    return new PageserverConfig(
        listenHttp != null ? listenHttp : d.listenHttp,
        listenPg != null ? listenPg : d.listenPg,
        id != null ? id : d.id,
        checkpointDistance != null ? checkpointDistance : d.checkpointDistance,
        checkpointTimeout != null ? checkpointTimeout : d.checkpointTimeout,
        waitLsnTimeout != null ? waitLsnTimeout : d.waitLsnTimeout,
        pageCacheSize != null ? pageCacheSize : d.pageCacheSize,
        walredoProcesses != null ? walredoProcesses : d.walredoProcesses,
        walredoTimeout != null ? walredoTimeout : d.walredoTimeout,
        dataChecksums != null ? dataChecksums : d.dataChecksums);
  }

  /**
   * Reads {@code pageserver.toml} from {@code dataDir} (defaults if there is none) and checks it.
   *
   * @throws IllegalArgumentException with one line naming the file and the bad setting
   */
  public static PageserverConfig load(Path dataDir) {
    Path file = dataDir.resolve(FILE_NAME);
    if (!Files.exists(file)) {
      return DEFAULT;
    }
    PageserverConfig c = Settings.read(file, PageserverConfig.class);
    return (c == null ? DEFAULT : c.withDefaults()).validate();
  }

  /** Writes this configuration as TOML (durability is the caller's: used at init). */
  public void write(Path dataDir) throws IOException {
    Files.writeString(dataDir.resolve(FILE_NAME), new TomlMapper().writeValueAsString(this));
  }

  /** Checks every value parses; throws IllegalArgumentException naming the first bad one. */
  public PageserverConfig validate() {
    address("listen_http", listenHttp);
    address("listen_pg", listenPg);
    bytes("checkpoint_distance", checkpointDistance);
    duration("checkpoint_timeout", checkpointTimeout);
    duration("wait_lsn_timeout", waitLsnTimeout);
    bytes("page_cache_size", pageCacheSize);
    duration("walredo_timeout", walredoTimeout);
    if (walredoProcesses < 1 || walredoProcesses > 64) {
      throw new IllegalArgumentException(
          "walredo_processes must be between 1 and 64, got " + walredoProcesses);
    }
    return this;
  }

  public InetSocketAddress httpAddress() {
    return address("listen_http", listenHttp);
  }

  public InetSocketAddress pgAddress() {
    return address("listen_pg", listenPg);
  }

  public LayerStoreConfig layerStoreConfig() {
    return LayerStoreConfig.DEFAULT
        .withCheckpointDistance(bytes("checkpoint_distance", checkpointDistance))
        .withCheckpointTimeout(duration("checkpoint_timeout", checkpointTimeout));
  }

  public Duration waitLsnTimeoutDuration() {
    return duration("wait_lsn_timeout", waitLsnTimeout);
  }

  public long pageCacheBytes() {
    return bytes("page_cache_size", pageCacheSize);
  }

  public Duration walredoTimeoutDuration() {
    return duration("walredo_timeout", walredoTimeout);
  }

  /** Parses {@code host:port}; throws IllegalArgumentException naming the key. */
  public static InetSocketAddress address(String key, String value) {
    return Settings.address(key, value);
  }

  static long bytes(String key, String value) {
    return Settings.bytes(key, value);
  }

  static Duration duration(String key, String value) {
    return Settings.duration(key, value);
  }
}
