package io.zenith.gateway.control;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The repository's branch names ({@code branches.toml}): name → timeline id of the default tenant.
 * The pageserver knows timelines and their ancestry; names are the control plane's. Written durably
 * ({@link DurableFiles}) after the pageserver created the timeline, so a crash in between leaves an
 * unnamed timeline, never a name without a timeline.
 *
 * <pre>
 * main = "5f1d0c2e9a7b4e0f8c3d2b1a09e8f7d6"
 * b1 = "..."
 * </pre>
 *
 * Immutable; {@link #with} returns a copy.
 */
public record Branches(Map<String, TimelineId> byName) {
  public static final String FILE_NAME = "branches.toml";
  public static final String DEFAULT_BRANCH = "main";

  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}");

  public Branches {
    byName = java.util.Collections.unmodifiableMap(new TreeMap<>(byName));
  }

  /** Checks a new branch name; returns it. */
  public static String checkName(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new ControlPlaneException(
          "invalid branch name '"
              + name
              + "': use 1 to 63 letters, digits, '_', '.' and '-', not starting with '.' or '-'");
    }
    if (name.equals("list") || name.equals("delete")) {
      throw new ControlPlaneException(
          "'" + name + "' cannot be a branch name (it is a subcommand of `zenith branch`)");
    }
    return name;
  }

  public Optional<TimelineId> find(String name) {
    return Optional.ofNullable(byName.get(name));
  }

  /** The timeline of a branch; a clear error if there is no such branch. */
  public TimelineId get(String name) {
    TimelineId t = byName.get(name);
    if (t == null) {
      throw new ControlPlaneException(
          "unknown branch '" + name + "' (branches: " + String.join(", ", byName.keySet()) + ")");
    }
    return t;
  }

  /** The name of a timeline, if it has one. */
  public Optional<String> nameOf(TimelineId timeline) {
    return byName.entrySet().stream()
        .filter(e -> e.getValue().equals(timeline))
        .map(Map.Entry::getKey)
        .findFirst();
  }

  public Branches with(String name, TimelineId timeline) {
    Map<String, TimelineId> m = new TreeMap<>(byName);
    m.put(name, timeline);
    return new Branches(m);
  }

  /** A copy without branch {@code name}. */
  public Branches without(String name) {
    Map<String, TimelineId> m = new TreeMap<>(byName);
    m.remove(name);
    return new Branches(m);
  }

  static Branches load(Path repoDir) {
    Path file = repoDir.resolve(FILE_NAME);
    if (!Files.exists(file)) {
      return new Branches(Map.of());
    }
    try {
      Map<String, String> raw =
          new TomlMapper()
              .readValue(file.toFile(), new TypeReference<TreeMap<String, String>>() {});
      Map<String, TimelineId> m = new TreeMap<>();
      if (raw != null) {
        raw.forEach((k, v) -> m.put(k, TimelineId.parse(v)));
      }
      return new Branches(m);
    } catch (IOException | IllegalArgumentException e) {
      throw new ControlPlaneException("cannot read " + file + ": " + e.getMessage());
    }
  }

  void write(Path repoDir) throws IOException {
    StringBuilder sb = new StringBuilder("# branch name = timeline id (default tenant)\n");
    byName.forEach(
        (k, v) -> sb.append(RepoConfig.quote(k)).append(" = \"").append(v).append("\"\n"));
    DurableFiles.write(repoDir.resolve(FILE_NAME), sb.toString().getBytes(StandardCharsets.UTF_8));
  }
}
