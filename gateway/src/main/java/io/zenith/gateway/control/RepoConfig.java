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
 * </pre>
 *
 * Immutable and thread-safe.
 */
public record RepoConfig(
    @JsonProperty("default_tenant_id") String defaultTenantId,
    @JsonProperty("pg_os_user") String pgOsUser,
    @JsonProperty("compute_port_base") Integer computePortBase,
    @JsonProperty("compute_data_dir") String computeDataDir,
    @JsonProperty("pageserver") PageserverAddresses pageserver) {

  public static final String FILE_NAME = "config.toml";
  public static final int DEFAULT_COMPUTE_PORT_BASE = 55432;

  /** Where the CLI reaches the pageserver. */
  public record PageserverAddresses(
      @JsonProperty("listen_http") String listenHttp, @JsonProperty("listen_pg") String listenPg) {}

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
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(file + ": " + e.getMessage());
    }
    int base = c.computePortBase == null ? DEFAULT_COMPUTE_PORT_BASE : c.computePortBase;
    if (base < 1024 || base > 65000) {
      throw new ControlPlaneException(
          file + ": compute_port_base must be between 1024 and 65000, got " + base);
    }
    return new RepoConfig(c.defaultTenantId, c.pgOsUser, base, c.computeDataDir, c.pageserver);
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
            + "\n";
    DurableFiles.write(repoDir.resolve(FILE_NAME), text.getBytes(StandardCharsets.UTF_8));
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
