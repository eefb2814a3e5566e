package io.zenith.gateway.control;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * A compute node's {@code node.toml}: which timeline it runs on, at which LSN (a read-only,
 * "static" compute) or at the latest (a primary), and its port. The data directory is not described
 * here: it is rebuilt from a basebackup at every start.
 *
 * <pre>
 * name = "main"
 * tenant_id = "..."
 * timeline_id = "..."
 * branch = "main"
 * lsn = "0/16B3748"      # only for a read-only compute
 * port = 55432
 * </pre>
 *
 * Immutable and thread-safe.
 */
public record ComputeSpec(
    @JsonProperty("name") String name,
    @JsonProperty("tenant_id") String tenantId,
    @JsonProperty("timeline_id") String timelineId,
    @JsonProperty("branch") String branch,
    @JsonProperty("lsn") String lsn,
    @JsonProperty("port") int port) {

  public static final String FILE_NAME = "node.toml";
  private static final Pattern NAME = Pattern.compile("[a-z0-9_][a-z0-9_-]{0,62}");

  /** Checks a compute name; returns it. */
  public static String checkName(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new ControlPlaneException(
          "invalid compute name '"
              + name
              + "': use 1 to 63 lower-case letters, digits, '_' and '-', not starting with '-'");
    }
    return name;
  }

  public TenantId tenant() {
    return TenantId.parse(tenantId);
  }

  public TimelineId timeline() {
    return TimelineId.parse(timelineId);
  }

  /** The LSN of a read-only compute; empty for a primary. */
  public Optional<Lsn> pinnedLsn() {
    return Optional.ofNullable(lsn).map(Lsn::parse);
  }

  public boolean primary() {
    return lsn == null;
  }

  static ComputeSpec load(Path file) {
    try {
      ComputeSpec s =
          TomlMapper.builder()
              .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
              .build()
              .readValue(file.toFile(), ComputeSpec.class);
      s.tenant();
      s.timeline();
      s.pinnedLsn();
      return s;
    } catch (IOException | IllegalArgumentException e) {
      throw new ControlPlaneException("cannot read " + file + ": " + e.getMessage());
    }
  }

  void write(Path file) throws IOException {
    String text =
        "# compute node, written by `zenith pg create`\n"
            + "name = "
            + RepoConfig.quote(name)
            + "\ntenant_id = \""
            + tenantId
            + "\"\ntimeline_id = \""
            + timelineId
            + "\"\nbranch = "
            + RepoConfig.quote(branch)
            + "\n"
            + (lsn == null ? "" : "lsn = \"" + lsn + "\"    # read-only at this LSN\n")
            + "port = "
            + port
            + "\n";
    DurableFiles.write(file, text.getBytes(StandardCharsets.UTF_8));
  }
}
