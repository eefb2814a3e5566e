package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.gateway.config.LogOutput;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.config.ServiceAuth;
import io.zenith.gateway.config.Settings;
import io.zenith.layer.CompactionSettings;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * The pageserver's settings, from {@code pageserver.toml} in its data directory. Every key is
 * optional; unknown keys are an error (a typo must not silently fall back to a default).
 *
 * <pre>
 * listen_http = "127.0.0.1:9898"       # management API and /metrics
 * listen_pg = "127.0.0.1:64000"        # libpq endpoint (basebackup)
 * id = "pageserver-1"
 * checkpoint_distance = "32MiB"        # freeze the in-memory layer at this size (ADR 0010)
 * checkpoint_timeout = "10m"           # ... or at this age
 * wait_lsn_timeout = "60s"             # how long a read waits for WAL it has not received
 * page_cache_size = "256MiB"           # materialized pages
 * walredo_processes = 2                # WAL-redo processes per tenant
 * walredo_timeout = "10s"              # one redo request
 * data_checksums = true                # as the computes' initdb (scratch clusters match it)
 * log_format = "text"                  # or "json": one object per line (--log-format overrides)
 * auth = true                          # tokens on every request (ServiceAuth; default false)
 * auth_public_key_path = "../auth_public_key.pem"
 * auth_token_path = "auth_token"       # its token for the safekeepers
 *
 * max_local_layer_bytes = "10GiB"      # evict uploaded layer files beyond this (ADR 0027;
 *                                      # unset: no limit; needs remote_storage)
 * [remote_storage]                     # bottomless storage (RemoteStorageConfig; none if unset)
 * local_path = "../remote"             # or bucket, prefix, endpoint, region, path_style
 *
 * # the history's lifecycle (Neon's names); each may be overridden per tenant below
 * compaction_target_size = "128MiB"    # L1 delta and image layer files aim at this size
 * compaction_threshold = 10            # merge L0 layers into L1 layers once this many exist
 * image_creation_threshold = 3         # image of a key partition once this many deltas cover it
 * compaction_period = "20s"            # compact every timeline this often (also after flushes)
 * gc_horizon = "64MiB"                 # keep this much WAL's worth of history ...
 * pitr_interval = "7d"                 # ... and all of this long (whichever keeps more)
 * gc_period = "1h"                     # collect garbage this often, and whenever the cutoff
 *                                      # can move by checkpoint_distance ("0s": never on its own)
 *
 * [tenant."0123456789abcdef0123456789abcdef"]
 * gc_horizon = "1GiB"                  # this tenant keeps more
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
    @JsonProperty("data_checksums") Boolean dataChecksums,
    @JsonProperty("compaction_target_size") String compactionTargetSize,
    @JsonProperty("compaction_threshold") Integer compactionThreshold,
    @JsonProperty("image_creation_threshold") Integer imageCreationThreshold,
    @JsonProperty("compaction_period") String compactionPeriod,
    @JsonProperty("gc_horizon") String gcHorizon,
    @JsonProperty("pitr_interval") String pitrInterval,
    @JsonProperty("gc_period") String gcPeriod,
    @JsonProperty("tenant") Map<String, TenantOverrides> tenant,
    @JsonProperty("log_format") String logFormat,
    // the auth keys are left out when unset: the TOML writer would write null as ""
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth") @Nullable Boolean auth,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth_public_key_path")
        @Nullable String authPublicKeyPath,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth_token_path")
        @Nullable String authTokenPath,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("remote_storage")
        @Nullable RemoteStorageConfig remoteStorage,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("max_local_layer_bytes")
        @Nullable String maxLocalLayerBytes) {

  /** A tenant's own values of the history settings; unset ones come from the pageserver's. */
  public record TenantOverrides(
      @JsonProperty("compaction_target_size") String compactionTargetSize,
      @JsonProperty("compaction_threshold") Integer compactionThreshold,
      @JsonProperty("image_creation_threshold") Integer imageCreationThreshold,
      @JsonProperty("gc_horizon") String gcHorizon,
      @JsonProperty("pitr_interval") String pitrInterval) {}

  /**
   * A tenant's history settings in force.
   *
   * @param gcHorizon bytes of WAL behind the last record that GC keeps readable
   * @param pitrInterval how far back in time GC keeps everything readable (zero: no such limit)
   */
  public record History(CompactionSettings compaction, long gcHorizon, Duration pitrInterval) {}

  public static final String FILE_NAME = "pageserver.toml";

  public static final PageserverConfig DEFAULT =
      new PageserverConfig(
          "127.0.0.1:9898",
          "127.0.0.1:64000",
          "pageserver",
          "32MiB",
          "10m",
          "60s",
          "256MiB",
          2,
          "10s",
          true);

  /** The settings before the history's: those take their defaults. */
  public PageserverConfig(
      String listenHttp,
      String listenPg,
      String id,
      String checkpointDistance,
      String checkpointTimeout,
      String waitLsnTimeout,
      String pageCacheSize,
      Integer walredoProcesses,
      String walredoTimeout,
      Boolean dataChecksums) {
    this(
        listenHttp,
        listenPg,
        id,
        checkpointDistance,
        checkpointTimeout,
        waitLsnTimeout,
        pageCacheSize,
        walredoProcesses,
        walredoTimeout,
        dataChecksums,
        "128MiB",
        10,
        3,
        "20s",
        "64MiB",
        "7d",
        "1h",
        Map.of(),
        "text",
        null,
        null,
        null,
        null,
        null);
  }

  /** These history settings (for every tenant without overrides) instead of the current ones. */
  public PageserverConfig withHistory(
      String compactionTargetSize,
      int compactionThreshold,
      int imageCreationThreshold,
      String compactionPeriod,
      String gcHorizon,
      String pitrInterval,
      String gcPeriod) {
    return Settings.with(
        this,
        PageserverConfig.class,
        t ->
            t.put("compaction_target_size", compactionTargetSize)
                .put("compaction_threshold", compactionThreshold)
                .put("image_creation_threshold", imageCreationThreshold)
                .put("compaction_period", compactionPeriod)
                .put("gc_horizon", gcHorizon)
                .put("pitr_interval", pitrInterval)
                .put("gc_period", gcPeriod));
  }

  /** This remote storage instead of the current one (null: none). */
  public PageserverConfig withRemoteStorage(@Nullable RemoteStorageConfig remote) {
    return Settings.with(
        this, PageserverConfig.class, t -> t.set("remote_storage", Settings.tree(remote)));
  }

  /** These authentication settings instead of the current ones ({@link ServiceAuth}). */
  public PageserverConfig withAuth(
      boolean auth, @Nullable String publicKeyPath, @Nullable String tokenPath) {
    return Settings.with(
        this,
        PageserverConfig.class,
        t ->
            t.put("auth", auth)
                .put("auth_public_key_path", publicKeyPath)
                .put("auth_token_path", tokenPath));
  }

  /** The authentication settings, paths resolved against {@code dataDir}. */
  public ServiceAuth auth(Path dataDir) {
    return ServiceAuth.of(dataDir, auth, authPublicKeyPath, authTokenPath);
  }

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
        dataChecksums != null ? dataChecksums : d.dataChecksums,
        compactionTargetSize != null ? compactionTargetSize : d.compactionTargetSize,
        compactionThreshold != null ? compactionThreshold : d.compactionThreshold,
        imageCreationThreshold != null ? imageCreationThreshold : d.imageCreationThreshold,
        compactionPeriod != null ? compactionPeriod : d.compactionPeriod,
        gcHorizon != null ? gcHorizon : d.gcHorizon,
        pitrInterval != null ? pitrInterval : d.pitrInterval,
        gcPeriod != null ? gcPeriod : d.gcPeriod,
        tenant != null ? tenant : d.tenant,
        logFormat != null ? logFormat : d.logFormat,
        auth,
        authPublicKeyPath,
        authTokenPath,
        remoteStorage,
        maxLocalLayerBytes);
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
    LogOutput.Format.parse(logFormat);
    auth(Path.of("."));
    if (remoteStorage != null) {
      remoteStorage.settings(Path.of("."));
    }
    address("listen_http", listenHttp);
    address("listen_pg", listenPg);
    if (maxLocalLayerBytesValue().isPresent() && remoteStorage == null) {
      throw new IllegalArgumentException(
          "max_local_layer_bytes needs [remote_storage]: evicted layer files are fetched from it");
    }
    bytes("checkpoint_distance", checkpointDistance);
    duration("checkpoint_timeout", checkpointTimeout);
    duration("wait_lsn_timeout", waitLsnTimeout);
    bytes("page_cache_size", pageCacheSize);
    duration("walredo_timeout", walredoTimeout);
    if (walredoProcesses < 1 || walredoProcesses > 64) {
      throw new IllegalArgumentException(
          "walredo_processes must be between 1 and 64, got " + walredoProcesses);
    }
    positive("compaction_period", duration("compaction_period", compactionPeriod));
    Settings.durationOrZero("gc_period", gcPeriod);
    history(null);
    for (Map.Entry<String, TenantOverrides> e : tenant.entrySet()) {
      TenantId id;
      try {
        id = TenantId.parse(e.getKey());
      } catch (IllegalArgumentException bad) {
        throw new IllegalArgumentException(
            "[tenant.\"" + e.getKey() + "\"]: not a tenant id (32 hex digits)");
      }
      try {
        history(id);
      } catch (IllegalArgumentException bad) {
        throw new IllegalArgumentException("[tenant.\"" + e.getKey() + "\"]: " + bad.getMessage());
      }
    }
    return this;
  }

  private static Duration positive(String key, Duration d) {
    if (d.isZero() || d.isNegative()) {
      throw new IllegalArgumentException(key + " must be positive, got " + d);
    }
    return d;
  }

  /**
   * The history settings of {@code tenant} (the pageserver's own for null): its overrides where it
   * has them.
   *
   * @throws IllegalArgumentException naming the first bad setting
   */
  public History history(TenantId tenant) {
    TenantOverrides o = tenant == null ? null : this.tenant.get(tenant.toString());
    if (o == null) {
      o = new TenantOverrides(null, null, null, null, null);
    }
    String target =
        o.compactionTargetSize() != null ? o.compactionTargetSize() : compactionTargetSize;
    int threshold = o.compactionThreshold() != null ? o.compactionThreshold() : compactionThreshold;
    int images =
        o.imageCreationThreshold() != null ? o.imageCreationThreshold() : imageCreationThreshold;
    String horizon = o.gcHorizon() != null ? o.gcHorizon() : gcHorizon;
    String pitr = o.pitrInterval() != null ? o.pitrInterval() : pitrInterval;
    CompactionSettings c;
    try {
      c =
          new CompactionSettings(
              bytes("compaction_target_size", target), threshold, images, walredoProcesses);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(e.getMessage() + " (compaction settings)");
    }
    Duration p = Settings.durationOrZero("pitr_interval", pitr);
    return new History(c, bytes("gc_horizon", horizon), p);
  }

  public Duration compactionPeriodDuration() {
    return duration("compaction_period", compactionPeriod);
  }

  /** Zero: GC runs only when asked ({@code do_gc}). */
  public Duration gcPeriodDuration() {
    return Settings.durationOrZero("gc_period", gcPeriod);
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

  /** The local layer bytes beyond which uploaded layer files are evicted; empty: no limit. */
  public java.util.OptionalLong maxLocalLayerBytesValue() {
    return maxLocalLayerBytes == null
        ? java.util.OptionalLong.empty()
        : java.util.OptionalLong.of(bytes("max_local_layer_bytes", maxLocalLayerBytes));
  }

  /** This disk budget for layer files instead of the current one (null: no limit). */
  public PageserverConfig withMaxLocalLayerBytes(@Nullable String budget) {
    return Settings.with(this, PageserverConfig.class, t -> t.put("max_local_layer_bytes", budget));
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
