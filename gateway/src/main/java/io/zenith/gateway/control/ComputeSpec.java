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
import java.util.Collections;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;
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
 * storage = "lazy"     # lazy: base/ and global/ on the compute agent's FUSE mounts; full: copied
 *
 * [settings]           # `pg create --config`, `pg config --set`: into postgresql.conf
 * "max_prepared_transactions" = "10"
 *
 * [alter_system]       # ALTER SYSTEM of the last run: back into postgresql.auto.conf
 * "work_mem" = "64MB"
 * </pre>
 *
 * Settings are keyed by lower-case name, sorted. Immutable and thread-safe.
 */
public record ComputeSpec(
    @JsonProperty("name") String name,
    @JsonProperty("tenant_id") String tenantId,
    @JsonProperty("timeline_id") String timelineId,
    @JsonProperty("branch") String branch,
    @JsonProperty("lsn") String lsn,
    @JsonProperty("port") int port,
    @JsonProperty("settings") SortedMap<String, String> settings,
    @JsonProperty("alter_system") SortedMap<String, String> alterSystem,
    @JsonProperty("storage") String storage) {

  /** How a compute's relation files reach it (ADR 0021). */
  public enum Storage {
    /**
     * A slim basebackup; {@code base/} and {@code global/} served by the compute agent's FUSE
     * mounts from the pageserver at the start LSN, with a local overlay for what the compute
     * writes.
     */
    LAZY,
    /** A full basebackup: every relation file copied into the data directory at start. */
    FULL;

    /** "lazy" or "full", as node.toml and the CLI spell it. */
    @Override
    public String toString() {
      return name().toLowerCase(Locale.ROOT);
    }

    /** Parses "lazy" or "full". */
    public static Storage parse(String s) {
      return switch (s) {
        case "lazy" -> LAZY;
        case "full" -> FULL;
        default ->
            throw new IllegalArgumentException("storage must be lazy or full, not '" + s + "'");
      };
    }
  }

  public static final String FILE_NAME = "node.toml";
  private static final Pattern NAME = Pattern.compile("[a-z0-9_][a-z0-9_-]{0,62}");

  public ComputeSpec {
    settings = settings == null ? emptyMap() : copy(settings);
    alterSystem = alterSystem == null ? emptyMap() : copy(alterSystem);
    // computes made before lazy storage existed were full
    storage = storage == null ? Storage.FULL.toString() : storage;
  }

  /** A full compute with these settings. */
  public ComputeSpec(
      String name,
      String tenantId,
      String timelineId,
      String branch,
      String lsn,
      int port,
      SortedMap<String, String> settings,
      SortedMap<String, String> alterSystem) {
    this(name, tenantId, timelineId, branch, lsn, port, settings, alterSystem, null);
  }

  /** A spec without settings. */
  public ComputeSpec(
      String name, String tenantId, String timelineId, String branch, String lsn, int port) {
    this(name, tenantId, timelineId, branch, lsn, port, null, null, null);
  }

  /** This spec with other settings ({@code pg config}). */
  public ComputeSpec withSettings(SortedMap<String, String> s) {
    return new ComputeSpec(name, tenantId, timelineId, branch, lsn, port, s, alterSystem, storage);
  }

  /** This spec with what ALTER SYSTEM set on the compute's last run. */
  public ComputeSpec withAlterSystem(SortedMap<String, String> s) {
    return new ComputeSpec(name, tenantId, timelineId, branch, lsn, port, settings, s, storage);
  }

  private static SortedMap<String, String> emptyMap() {
    return Collections.unmodifiableSortedMap(new TreeMap<>());
  }

  private static SortedMap<String, String> copy(Map<String, String> m) {
    SortedMap<String, String> t = new TreeMap<>();
    m.forEach((k, v) -> t.put(k.toLowerCase(Locale.ROOT), v));
    return Collections.unmodifiableSortedMap(t);
  }

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

  /** How its relation files reach it. */
  public Storage storageKind() {
    return Storage.parse(storage);
  }

  /** Whether it runs on the compute agent's mounts. */
  public boolean lazy() {
    return storageKind() == Storage.LAZY;
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
      s.storageKind();
      // a hand-edited [settings] must not override what the control plane writes
      s.settings().forEach((k, v) -> ComputeSettings.parse(k + "=" + v));
      s.settings().keySet().forEach(ComputeSettings::checkSettable);
      return s;
    } catch (ControlPlaneException e) {
      throw new ControlPlaneException("cannot use " + file + ": " + e.getMessage());
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
            + "\nstorage = \""
            + storage
            + "\"    # lazy: on the compute agent's FUSE mounts; full: copied at start\n"
            + table(
                "settings",
                "`zenith pg config`: written into postgresql.conf at every start",
                settings)
            + table(
                "alter_system",
                "ALTER SYSTEM of the last run: restored into postgresql.auto.conf at every start",
                alterSystem);
    DurableFiles.write(file, text.getBytes(StandardCharsets.UTF_8));
  }

  private static String table(String name, String comment, SortedMap<String, String> m) {
    if (m.isEmpty()) {
      return "";
    }
    StringBuilder sb = new StringBuilder("\n[").append(name).append("]    # ").append(comment);
    m.forEach(
        (k, v) ->
            sb.append('\n').append(RepoConfig.quote(k)).append(" = ").append(RepoConfig.quote(v)));
    return sb.append('\n').toString();
  }
}
