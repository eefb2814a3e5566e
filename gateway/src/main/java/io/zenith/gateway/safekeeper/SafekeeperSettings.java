package io.zenith.gateway.safekeeper;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.gateway.config.LogOutput;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.config.ServiceAuth;
import io.zenith.gateway.config.Settings;
import io.zenith.replication.safekeeper.PageserverSource;
import io.zenith.replication.safekeeper.SafekeeperConfig;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * A safekeeper's settings, from {@code safekeeper.toml} in its data directory. Every key is
 * optional; unknown keys are an error (a typo must not silently fall back to a default).
 *
 * <pre>
 * id = 1                                 # this safekeeper's id: slot and application name sk_1
 * listen_http = "127.0.0.1:7676"         # management API, peer gossip, /metrics
 * listen_pg = "127.0.0.1:5454"           # libpq: WAL for pageservers and peers
 * log_format = "text"                    # or "json": one object per line (--log-format overrides)
 * auth = true                            # tokens on every request (ServiceAuth; default false)
 * auth_public_key_path = "../auth_public_key.pem"
 * auth_token_path = "auth_token"         # its token for its peers
 * # Lag limits of timelines created without their own (sizes; "0" = no limit): how far the
 * # pageserver's write / flush / apply positions may trail before acknowledgements wait.
 * max_replication_write_lag = "15MiB"
 * max_replication_flush_lag = "10GiB"
 * max_replication_apply_lag = "0"
 *
 * [remote_storage]                       # bottomless storage (RemoteStorageConfig; none if unset)
 * local_path = "../../remote"            # or bucket, prefix, endpoint, region, path_style
 *
 * [pageserver]                           # whose status updates are the pageserver's feedback
 * application_name = "pageserver"        # (lag limits, WAL retention; ADR 0007): this
 * addresses = ["127.0.0.1", "::1"]       # application_name from one of these IP addresses
 *
 * [[peers]]                              # the other safekeepers; quorum = majority of all
 * id = 2
 * http = "127.0.0.1:7677"
 * pg = "127.0.0.1:5455"
 * </pre>
 *
 * Immutable and thread-safe.
 */
public record SafekeeperSettings(
    @JsonProperty("id") Integer id,
    @JsonProperty("listen_http") String listenHttp,
    @JsonProperty("listen_pg") String listenPg,
    @JsonProperty("max_replication_write_lag") String maxReplicationWriteLag,
    @JsonProperty("max_replication_flush_lag") String maxReplicationFlushLag,
    @JsonProperty("max_replication_apply_lag") String maxReplicationApplyLag,
    @JsonProperty("peers") List<Peer> peers,
    @JsonProperty("pageserver") @Nullable Pageserver pageserver,
    @JsonProperty("log_format") @Nullable String logFormat,
    // the auth keys are left out when unset: the TOML writer would write null as ""
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth") @Nullable Boolean auth,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth_public_key_path")
        @Nullable String authPublicKeyPath,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("auth_token_path")
        @Nullable String authTokenPath,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("remote_storage")
        @Nullable RemoteStorageConfig remoteStorage) {

  public static final String FILE_NAME = "safekeeper.toml";

  /** The settings with text logs. */
  public SafekeeperSettings(
      Integer id,
      String listenHttp,
      String listenPg,
      String maxReplicationWriteLag,
      String maxReplicationFlushLag,
      String maxReplicationApplyLag,
      List<Peer> peers,
      @Nullable Pageserver pageserver) {
    this(
        id,
        listenHttp,
        listenPg,
        maxReplicationWriteLag,
        maxReplicationFlushLag,
        maxReplicationApplyLag,
        peers,
        pageserver,
        "text",
        null,
        null,
        null,
        null);
  }

  /** The settings with the default {@code [pageserver]} ({@link Pageserver#LOCAL}). */
  public SafekeeperSettings(
      Integer id,
      String listenHttp,
      String listenPg,
      String maxReplicationWriteLag,
      String maxReplicationFlushLag,
      String maxReplicationApplyLag,
      List<Peer> peers) {
    this(
        id,
        listenHttp,
        listenPg,
        maxReplicationWriteLag,
        maxReplicationFlushLag,
        maxReplicationApplyLag,
        peers,
        Pageserver.LOCAL);
  }

  /**
   * Which connections are the pageserver's: its {@code application_name} and the IP addresses
   * (literals, no names) it connects from; with auth on, also a {@code safekeeperdata} token.
   */
  public record Pageserver(
      @JsonProperty("application_name") String applicationName,
      @JsonProperty("addresses") List<String> addresses) {

    /** The pageserver on this machine: {@link PageserverSource#LOCAL}. */
    public static final Pageserver LOCAL =
        new Pageserver(
            PageserverSource.LOCAL.applicationName(),
            PageserverSource.LOCAL.addresses().stream().map(InetAddress::getHostAddress).toList());

    /**
     * The core's view.
     *
     * @throws IllegalArgumentException naming the bad value
     */
    public PageserverSource source() {
      if (applicationName == null || applicationName.isEmpty()) {
        throw new IllegalArgumentException("pageserver.application_name must not be empty");
      }
      if (addresses == null || addresses.isEmpty()) {
        throw new IllegalArgumentException(
            "pageserver.addresses must name at least one IP address");
      }
      List<InetAddress> ips = new ArrayList<>();
      for (String a : addresses) {
        try {
          ips.add(InetAddress.ofLiteral(a));
        } catch (IllegalArgumentException | NullPointerException e) {
          throw new IllegalArgumentException(
              "pageserver.addresses: \"" + a + "\" is not an IP address");
        }
      }
      return new PageserverSource(applicationName, ips);
    }
  }

  /** Another safekeeper of the same set. */
  public record Peer(
      @JsonProperty("id") Integer id,
      @JsonProperty("http") String http,
      @JsonProperty("pg") String pg) {

    public InetSocketAddress httpAddress() {
      return Settings.address("peers.http", http);
    }

    public InetSocketAddress pgAddress() {
      return Settings.address("peers.pg", pg);
    }
  }

  /**
   * Defaults: safekeeper 1 alone, Neon's ports, and Neon's compute defaults for the lag limits
   * (docs/decisions/0005-safekeeper-process.md): the write lag bounds what a pageserver must
   * re-receive, the flush lag is far above a checkpoint distance, the apply lag (the pageserver's
   * durable position, ADR 0007) is off; the pageserver is the local one.
   */
  public static final SafekeeperSettings DEFAULT =
      new SafekeeperSettings(
          1,
          "127.0.0.1:7676",
          "127.0.0.1:5454",
          "15MiB",
          "10GiB",
          "0",
          List.of(),
          Pageserver.LOCAL);

  public SafekeeperSettings {
    peers = peers == null ? null : List.copyOf(peers);
  }

  /** Fills unset values from {@link #DEFAULT}. */
  public SafekeeperSettings withDefaults() {
    SafekeeperSettings d = DEFAULT;
    return new SafekeeperSettings(
        id != null ? id : d.id,
        listenHttp != null ? listenHttp : d.listenHttp,
        listenPg != null ? listenPg : d.listenPg,
        maxReplicationWriteLag != null ? maxReplicationWriteLag : d.maxReplicationWriteLag,
        maxReplicationFlushLag != null ? maxReplicationFlushLag : d.maxReplicationFlushLag,
        maxReplicationApplyLag != null ? maxReplicationApplyLag : d.maxReplicationApplyLag,
        peers != null ? peers : d.peers,
        pageserver != null ? pageserver : d.pageserver,
        logFormat != null ? logFormat : d.logFormat,
        auth,
        authPublicKeyPath,
        authTokenPath,
        remoteStorage);
  }

  /**
   * Reads {@code safekeeper.toml} from {@code dataDir} (defaults if there is none) and checks it.
   *
   * @throws IllegalArgumentException with one line naming the file and the bad setting
   */
  public static SafekeeperSettings load(Path dataDir) {
    Path file = dataDir.resolve(FILE_NAME);
    if (!Files.exists(file)) {
      return DEFAULT;
    }
    SafekeeperSettings s = Settings.read(file, SafekeeperSettings.class);
    try {
      return (s == null ? DEFAULT : s.withDefaults()).validate();
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage());
    }
  }

  /** Writes this configuration as TOML, durably. */
  public void write(Path dataDir) throws IOException {
    DurableFiles.write(
        dataDir.resolve(FILE_NAME),
        new TomlMapper().writeValueAsString(this).getBytes(StandardCharsets.UTF_8));
  }

  /** Checks every value; throws IllegalArgumentException naming the first bad one. */
  public SafekeeperSettings validate() {
    if (logFormat != null) {
      LogOutput.Format.parse(logFormat);
    }
    if (id < 1) {
      throw new IllegalArgumentException("id must be at least 1, got " + id);
    }
    Settings.address("listen_http", listenHttp);
    Settings.address("listen_pg", listenPg);
    auth(Path.of("."));
    if (remoteStorage != null) {
      remoteStorage.settings(Path.of("."));
    }
    lagLimits();
    pageserverSource();
    Set<Integer> ids = new HashSet<>(Set.of(id));
    for (Peer p : peers) {
      if (p == null || p.id() == null || p.http() == null || p.pg() == null) {
        throw new IllegalArgumentException("every [[peers]] entry needs id, http and pg");
      }
      if (p.id() < 1) {
        throw new IllegalArgumentException("peer id must be at least 1, got " + p.id());
      }
      if (!ids.add(p.id())) {
        throw new IllegalArgumentException(
            "safekeeper id " + p.id() + " is used twice (this safekeeper's id is " + id + ")");
      }
      p.httpAddress();
      p.pgAddress();
    }
    return this;
  }

  public InetSocketAddress httpAddress() {
    return Settings.address("listen_http", listenHttp);
  }

  public InetSocketAddress pgAddress() {
    return Settings.address("listen_pg", listenPg);
  }

  /** The default lag limits of new timelines, in bytes. */
  public LagLimits lagLimits() {
    return new LagLimits(
        Settings.bytesOrZero("max_replication_write_lag", maxReplicationWriteLag),
        Settings.bytesOrZero("max_replication_flush_lag", maxReplicationFlushLag),
        Settings.bytesOrZero("max_replication_apply_lag", maxReplicationApplyLag));
  }

  /** Which connections are the pageserver's ({@link Pageserver#LOCAL} when not set). */
  public PageserverSource pageserverSource() {
    return (pageserver == null ? Pageserver.LOCAL : pageserver).source();
  }

  /** The core's settings: this id, peers + 1 members, WAL offload when remote storage is set. */
  public SafekeeperConfig coreConfig() {
    return new SafekeeperConfig(
        id,
        peers.size() + 1,
        lagLimits(),
        Duration.ofSeconds(5),
        pageserverSource(),
        remoteStorage() != null);
  }

  /** The peer with {@code id}, if configured. */
  public @Nullable Peer peer(int peerId) {
    for (Peer p : peers) {
      if (p.id() == peerId) {
        return p;
      }
    }
    return null;
  }

  public SafekeeperSettings withListen(String http, String pg) {
    return Settings.with(
        this, SafekeeperSettings.class, t -> t.put("listen_http", http).put("listen_pg", pg));
  }

  public SafekeeperSettings withPageserver(Pageserver p) {
    return Settings.with(
        this, SafekeeperSettings.class, t -> t.set("pageserver", Settings.tree(p)));
  }

  /** This remote storage instead of the current one (null: none). */
  public SafekeeperSettings withRemoteStorage(@Nullable RemoteStorageConfig remote) {
    return Settings.with(
        this, SafekeeperSettings.class, t -> t.set("remote_storage", Settings.tree(remote)));
  }

  /** These authentication settings instead of the current ones ({@link ServiceAuth}). */
  public SafekeeperSettings withAuth(
      boolean on, @Nullable String publicKeyPath, @Nullable String tokenPath) {
    return Settings.with(
        this,
        SafekeeperSettings.class,
        t ->
            t.put("auth", on)
                .put("auth_public_key_path", publicKeyPath)
                .put("auth_token_path", tokenPath));
  }

  /** The authentication settings, paths resolved against {@code dataDir}. */
  public ServiceAuth auth(Path dataDir) {
    return ServiceAuth.of(dataDir, auth, authPublicKeyPath, authTokenPath);
  }
}
