package io.zenith.gateway.control;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A repository's {@code config.toml}: what the CLI needs to find and run things. Written by {@code
 * zenith init}; the user may edit it (unknown keys are an error, so a typo does not silently fall
 * back to a default).
 *
 * <pre>
 * default_tenant_id = "0f3c..."              # the tenant commands act on
 * pg_os_user = "postgres"                    # PostgreSQL's OS user when zenith runs as root
 * compute_port_base = 55432                  # computes get the first free port from here
 * compute_data_dir = "/path/.zenith/computes" # where compute data directories and logs live
 *
 * [pageserver]
 * listen_http = "127.0.0.1:9898"             # as in pageserver/pageserver.toml
 * listen_pg = "127.0.0.1:64000"
 *
 * [[safekeepers]]                            # one per safekeeper, as in its safekeeper.toml
 * id = 1
 * listen_http = "127.0.0.1:7676"
 * listen_pg = "127.0.0.1:7677"
 * </pre>
 *
 * A configuration without {@code [[safekeepers]]} (a repository made before safekeepers existed, or
 * {@code init --safekeepers 0}) has none: the pageserver then streams WAL from the primary compute
 * directly, as its synchronous standby.
 *
 * <p>Immutable and thread-safe.
 */
public record RepoConfig(
    @JsonProperty("default_tenant_id") String defaultTenantId,
    @JsonProperty("pg_os_user") String pgOsUser,
    @JsonProperty("compute_port_base") Integer computePortBase,
    @JsonProperty("compute_data_dir") String computeDataDir,
    @JsonProperty("pageserver") PageserverAddresses pageserver,
    @JsonProperty("safekeepers") List<SafekeeperAddresses> safekeepers) {

  public static final String FILE_NAME = "config.toml";
  public static final int DEFAULT_COMPUTE_PORT_BASE = 55432;

  /** At most this many safekeepers: elections and the quorum are all-to-all. */
  public static final int MAX_SAFEKEEPERS = 7;

  public RepoConfig {
    safekeepers = safekeepers == null ? List.of() : List.copyOf(safekeepers);
  }

  /** Where the CLI reaches the pageserver. */
  public record PageserverAddresses(
      @JsonProperty("listen_http") String listenHttp, @JsonProperty("listen_pg") String listenPg) {}

  /** Where the CLI reaches one safekeeper, and its id. */
  public record SafekeeperAddresses(
      @JsonProperty("id") Integer id,
      @JsonProperty("listen_http") String listenHttp,
      @JsonProperty("listen_pg") String listenPg) {

    public InetSocketAddress http() {
      return connectable(PageserverConfig.address("listen_http", listenHttp));
    }

    public InetSocketAddress pg() {
      return connectable(PageserverConfig.address("listen_pg", listenPg));
    }
  }

  /** The safekeeper with {@code id}, if configured. */
  public Optional<SafekeeperAddresses> safekeeper(int id) {
    return safekeepers.stream().filter(s -> s.id() == id).findFirst();
  }

  /** A majority of the safekeepers: what a commit waits for and an election needs. */
  public int quorum() {
    return safekeepers.size() / 2 + 1;
  }

  public TenantId tenant() {
    return TenantId.parse(defaultTenantId);
  }

  public Path computeDataPath() {
    return Path.of(computeDataDir);
  }

  public InetSocketAddress pageserverHttp() {
    return connectable(PageserverConfig.address("listen_http", pageserver.listenHttp()));
  }

  public InetSocketAddress pageserverPg() {
    return connectable(PageserverConfig.address("listen_pg", pageserver.listenPg()));
  }

  /** A wildcard listen address is reached on the loopback interface. */
  private static InetSocketAddress connectable(InetSocketAddress a) {
    String h = a.getHostString();
    if (h.equals("0.0.0.0") || h.equals("::") || h.equals("[::]") || h.isEmpty()) {
      return InetSocketAddress.createUnresolved("127.0.0.1", a.getPort());
    }
    return InetSocketAddress.createUnresolved(h, a.getPort());
  }

  /**
   * Reads and checks {@code config.toml}.
   *
   * @throws ControlPlaneException naming the file and the problem
   */
  public static RepoConfig load(Path repoDir) {
    Path file = repoDir.resolve(FILE_NAME);
    RepoConfig c;
    try {
      c =
          TomlMapper.builder()
              .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
              .build()
              .readValue(file.toFile(), RepoConfig.class);
    } catch (UnrecognizedPropertyException e) {
      throw new ControlPlaneException(file + ": unknown setting '" + e.getPropertyName() + "'");
    } catch (JsonMappingException e) {
      throw new ControlPlaneException(file + ": " + e.getOriginalMessage());
    } catch (IOException e) {
      throw new ControlPlaneException("cannot read " + file + ": " + e.getMessage());
    }
    if (c == null) {
      throw new ControlPlaneException(file + " is empty");
    }
    try {
      TenantId.parse(String.valueOf(c.defaultTenantId));
      if (c.pageserver == null
          || c.pageserver.listenHttp == null
          || c.pageserver.listenPg == null) {
        throw new IllegalArgumentException("[pageserver] listen_http and listen_pg are required");
      }
      PageserverConfig.address("listen_http", c.pageserver.listenHttp);
      PageserverConfig.address("listen_pg", c.pageserver.listenPg);
      if (c.computeDataDir == null || !Path.of(c.computeDataDir).isAbsolute()) {
        throw new IllegalArgumentException("compute_data_dir must be an absolute path");
      }
      checkSafekeepers(c.safekeepers);
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(file + ": " + e.getMessage());
    }
    int base = c.computePortBase == null ? DEFAULT_COMPUTE_PORT_BASE : c.computePortBase;
    if (base < 1024 || base > 65000) {
      throw new ControlPlaneException(
          file + ": compute_port_base must be between 1024 and 65000, got " + base);
    }
    return new RepoConfig(
        c.defaultTenantId, c.pgOsUser, base, c.computeDataDir, c.pageserver, c.safekeepers);
  }

  private static void checkSafekeepers(List<SafekeeperAddresses> sks) {
    if (sks.size() > MAX_SAFEKEEPERS) {
      throw new IllegalArgumentException(
          "at most " + MAX_SAFEKEEPERS + " [[safekeepers]], got " + sks.size());
    }
    Set<Integer> ids = new HashSet<>();
    for (SafekeeperAddresses s : sks) {
      if (s.id() == null || s.listenHttp() == null || s.listenPg() == null) {
        throw new IllegalArgumentException(
            "every [[safekeepers]] entry needs id, listen_http and listen_pg");
      }
      if (s.id() < 1) {
        throw new IllegalArgumentException("safekeeper ids must be at least 1, got " + s.id());
      }
      if (!ids.add(s.id())) {
        throw new IllegalArgumentException(
            "safekeeper ids must be distinct, got " + s.id() + " twice");
      }
      PageserverConfig.address("listen_http", s.listenHttp());
      PageserverConfig.address("listen_pg", s.listenPg());
    }
  }

  /** Writes {@code config.toml} durably, with comments. */
  public void write(Path repoDir) throws IOException {
    String text =
        "# Zenith repository configuration, written by `zenith init`.\n"
            + "default_tenant_id = "
            + quote(defaultTenantId)
            + "    # the tenant commands act on\n"
            + (pgOsUser == null
                ? "# pg_os_user = \"postgres\"    # PostgreSQL's OS user when zenith runs as root\n"
                : "pg_os_user = "
                    + quote(pgOsUser)
                    + "    # PostgreSQL's OS user when zenith runs as root\n")
            + "compute_port_base = "
            + computePortBase
            + "    # computes get the first free port from here\n"
            + "compute_data_dir = "
            + quote(computeDataDir)
            + "    # compute data directories and logs\n"
            + "\n"
            + "# Where the CLI reaches the pageserver; keep in step with"
            + " pageserver/pageserver.toml.\n"
            + "[pageserver]\n"
            + "listen_http = "
            + quote(pageserver.listenHttp)
            + "\n"
            + "listen_pg = "
            + quote(pageserver.listenPg)
            + "\n"
            + safekeeperSections();
    DurableFiles.write(repoDir.resolve(FILE_NAME), text.getBytes(StandardCharsets.UTF_8));
  }

  private String safekeeperSections() {
    StringBuilder sb = new StringBuilder();
    if (!safekeepers.isEmpty()) {
      sb.append(
          "\n# Where the CLI reaches each safekeeper; keep in step with"
              + " safekeepers/sk<id>/safekeeper.toml.\n");
    }
    for (SafekeeperAddresses s : safekeepers) {
      sb.append("\n[[safekeepers]]\nid = ")
          .append(s.id())
          .append("\nlisten_http = ")
          .append(quote(s.listenHttp()))
          .append("\nlisten_pg = ")
          .append(quote(s.listenPg()))
          .append('\n');
    }
    return sb.toString();
  }

  static String quote(String s) {
    StringBuilder sb = new StringBuilder("\"");
    for (char ch : s.toCharArray()) {
      switch (ch) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        default -> {
          if (ch < 0x20) {
            sb.append(String.format("\\u%04x", (int) ch));
          } else {
            sb.append(ch);
          }
        }
      }
    }
    return sb.append('"').toString();
  }

  static boolean exists(Path repoDir) {
    return Files.exists(repoDir.resolve(FILE_NAME));
  }
}
