package io.zenith.gateway.control;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The repository's tenant names ({@code tenants.toml}): name → tenant id. The pageserver knows
 * tenants by id; names are the control plane's, unique in the repository. Written durably ({@link
 * DurableFiles}) after the pageserver created the tenant, so a crash in between leaves an unnamed
 * tenant on the pageserver, never a name without a tenant. A repository made before tenants had
 * names has no file: its one tenant, {@code default_tenant_id}, is named {@link #FIRST_TENANT}.
 *
 * <pre>
 * default = "0f3c..."
 * analytics = "..."
 * </pre>
 *
 * Immutable; {@link #with} returns a copy.
 */
public record Tenants(Map<String, TenantId> byName) {
  public static final String FILE_NAME = "tenants.toml";

  /** The name of the repository's first tenant, made by {@code zenith init}. */
  public static final String FIRST_TENANT = "default";

  private static final Pattern NAME = Pattern.compile("[a-z0-9_][a-z0-9_-]{0,62}");
  private static final Pattern ID_LIKE = Pattern.compile("[0-9a-f]{32}");

  public Tenants {
    byName = Collections.unmodifiableMap(new TreeMap<>(byName));
  }

  /** A tenant as the CLI names it. */
  public record Ref(String name, TenantId id) {}

  /** Checks a new tenant name; returns it. */
  public static String checkName(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new ControlPlaneException(
          "invalid tenant name '"
              + name
              + "': use 1 to 63 lower-case letters, digits, '_' and '-', not starting with '-'");
    }
    if (ID_LIKE.matcher(name).matches()) {
      throw new ControlPlaneException(
          "invalid tenant name '" + name + "': it would read as a tenant id");
    }
    return name;
  }

  /** The tenant named {@code nameOrId}, or whose id it is; a clear error if there is none. */
  public Ref resolve(String nameOrId) {
    TenantId byNameId = byName.get(nameOrId);
    if (byNameId != null) {
      return new Ref(nameOrId, byNameId);
    }
    if (ID_LIKE.matcher(nameOrId).matches()) {
      TenantId id = TenantId.parse(nameOrId);
      Optional<String> name = nameOf(id);
      if (name.isPresent()) {
        return new Ref(name.get(), id);
      }
    }
    throw new ControlPlaneException(
        "unknown tenant '"
            + nameOrId
            + "' (tenants: "
            + String.join(", ", byName.keySet())
            + "; see `zenith tenant list`)");
  }

  public Optional<TenantId> find(String name) {
    return Optional.ofNullable(byName.get(name));
  }

  /** The name of a tenant, if it has one. */
  public Optional<String> nameOf(TenantId id) {
    return byName.entrySet().stream()
        .filter(e -> e.getValue().equals(id))
        .map(Map.Entry::getKey)
        .findFirst();
  }

  public Tenants with(String name, TenantId id) {
    Map<String, TenantId> m = new TreeMap<>(byName);
    m.put(name, id);
    return new Tenants(m);
  }

  public Tenants without(String name) {
    Map<String, TenantId> m = new TreeMap<>(byName);
    m.remove(name);
    return new Tenants(m);
  }

  /** The repository's tenants; without a file, its first tenant alone. */
  static Tenants load(Path repoDir, TenantId first) {
    Path file = repoDir.resolve(FILE_NAME);
    if (!Files.exists(file)) {
      return new Tenants(Map.of(FIRST_TENANT, first));
    }
    try {
      Map<String, String> raw =
          new TomlMapper()
              .readValue(file.toFile(), new TypeReference<TreeMap<String, String>>() {});
      Map<String, TenantId> m = new TreeMap<>();
      if (raw != null) {
        raw.forEach((k, v) -> m.put(k, TenantId.parse(v)));
      }
      return new Tenants(m);
    } catch (IOException | IllegalArgumentException e) {
      throw new ControlPlaneException("cannot read " + file + ": " + e.getMessage());
    }
  }

  void write(Path repoDir) throws IOException {
    StringBuilder sb = new StringBuilder("# tenant name = tenant id\n");
    byName.forEach(
        (k, v) -> sb.append(RepoConfig.quote(k)).append(" = \"").append(v).append("\"\n"));
    DurableFiles.write(repoDir.resolve(FILE_NAME), sb.toString().getBytes(StandardCharsets.UTF_8));
  }
}
