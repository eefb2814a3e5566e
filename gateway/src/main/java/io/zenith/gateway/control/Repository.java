package io.zenith.gateway.control;

import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;

/**
 * A local Zenith repository: {@code ./.zenith} or {@code $ZENITH_REPO_DIR}.
 *
 * <pre>
 * config.toml              default tenant, pageserver addresses, compute ports, PostgreSQL's user
 * auth_private_key.pem     the key the CLI signs tokens with (0600; absent: auth off, ADR 0016)
 * auth_public_key.pem      the key the pageserver and the safekeepers verify tokens with
 * tenants.toml             tenant name → tenant id (absent: the first tenant alone, "default")
 * branches.toml            branch name → timeline id of the first tenant (default_tenant_id)
 * tenants/&lt;id&gt;/branches.toml the same for each later tenant
 * pageserver/              the pageserver's data directory: pageserver.toml, layer files, index/,
 *                          pageserver.log, pageserver.pid, auth_token (its token, 0600)
 * safekeepers/sk&lt;id&gt;/       each safekeeper's data directory: safekeeper.toml, timelines,
 *                          safekeeper.log, safekeeper.pid
 * computes/&lt;name&gt;/node.toml  one per compute node (and {@code term}: the term of a running
 *                          primary elected by the safekeepers)
 * &lt;compute_data_dir&gt;/&lt;name&gt;/ pgdata/ and postgres.log of each compute (computes/ itself when
 *                          PostgreSQL's OS user can reach it, else a directory under /tmp)
 * .lock                    held by commands that change the repository (and by init from before
 *                          it writes anything); holds the pid of the command holding it
 * </pre>
 *
 * Not thread-safe: one CLI command uses it at a time.
 */
public final class Repository {
  public static final String ENV = "ZENITH_REPO_DIR";
  public static final String DEFAULT_DIR = ".zenith";

  private final Path dir;
  private final RepoConfig config;
  private PgDistribution pg;
  private final RepoAuth auth;

  private Repository(Path dir, RepoConfig config) {
    this.dir = dir;
    this.config = config;
    this.auth = new RepoAuth(dir);
  }

  /** Where the repository is: {@code $ZENITH_REPO_DIR}, else {@code ./.zenith}; absolute. */
  public static Path locate() {
    String env = System.getenv(ENV);
    Path p = env != null && !env.isBlank() ? Path.of(env) : Path.of(DEFAULT_DIR);
    return p.toAbsolutePath().normalize();
  }

  /** Opens the repository at {@link #locate()}; a clear error if there is none. */
  public static Repository open() {
    return open(locate());
  }

  public static Repository open(Path dir) {
    if (!RepoConfig.exists(dir)) {
      throw new ControlPlaneException(
          "no Zenith repository at "
              + dir
              + "; create one with `zenith init` (or set "
              + ENV
              + " to an existing one)");
    }
    return new Repository(dir, RepoConfig.load(dir));
  }

  static Repository of(Path dir, RepoConfig config) {
    return new Repository(dir, config);
  }

  public Path dir() {
    return dir;
  }

  public RepoConfig config() {
    return config;
  }

  /** PostgreSQL 15, run as the configured OS user when root. */
  public PgDistribution pg() {
    if (pg == null) {
      pg = PgDistribution.detect(config.pgOsUser());
    }
    return pg;
  }

  public Path pageserverDir() {
    return dir.resolve("pageserver");
  }

  public Path computesDir() {
    return dir.resolve("computes");
  }

  /** The repository's keys and the tokens this command sends (ADR 0016). */
  public RepoAuth auth() {
    return auth;
  }

  public PageserverClient pageserver() {
    return new PageserverClient(config.pageserverHttp(), auth::adminToken);
  }

  /** The pageserver as a background process; SIGKILL after a minute (it flushes at SIGTERM). */
  public ServiceProcess pageserverProcess() {
    PageserverClient client = pageserver();
    return new ServiceProcess(
        "the pageserver",
        "pageserver",
        pageserverDir(),
        client.baseUrl(),
        client::isUp,
        "a pageserver of another repository?; stop it or change [pageserver] listen_http in"
            + " config.toml and pageserver/pageserver.toml",
        Duration.ofSeconds(60),
        "ZENITH_PAGESERVER_JAVA_OPTS",
        config.pgOsUser(),
        () -> auth.writeServiceToken(pageserverDir()));
  }

  /** The repository's safekeepers (none for a repository made without them). */
  public Safekeepers safekeepers() {
    return new Safekeepers(this);
  }

  public Path safekeepersDir() {
    return dir.resolve("safekeepers");
  }

  /** The pageserver's own configuration (its {@code pageserver.toml}). */
  public PageserverConfig pageserverConfig() {
    try {
      return PageserverConfig.load(pageserverDir());
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(e.getMessage());
    }
  }

  /** The branches of the repository's first tenant. */
  public Branches branches() {
    return branches(config.tenant());
  }

  /** The branches of {@code tenant}. */
  public Branches branches(TenantId tenant) {
    return Branches.load(branchesDir(tenant));
  }

  void saveBranches(TenantId tenant, Branches b) throws IOException {
    Path d = branchesDir(tenant);
    if (!Files.isDirectory(d)) {
      DurableFiles.createDirectories(d);
    }
    b.write(d);
    RemoteNamesStore.publish(this, List.of(tenant), List.of());
  }

  /** Where a tenant's {@code branches.toml} is: the repository for the first tenant. */
  Path branchesDir(TenantId tenant) {
    return tenant.equals(config.tenant()) ? dir : dir.resolve("tenants").resolve(tenant.toString());
  }

  // ---------------------------------------------------------------- tenants

  public Tenants tenants() {
    return Tenants.load(dir, config.tenant());
  }

  /**
   * Writes {@code tenants.toml}, then the names objects in remote storage of the tenants whose name
   * changed (ADR 0029).
   */
  void saveTenants(Tenants t) throws IOException {
    Tenants before = tenants();
    t.write(dir);
    Set<TenantId> changed = new java.util.HashSet<>();
    t.byName()
        .forEach(
            (name, id) -> {
              if (!before.nameOf(id).equals(Optional.of(name))) {
                changed.add(id);
              }
            });
    Set<TenantId> removed = new java.util.HashSet<>(before.byName().values());
    removed.removeAll(t.byName().values());
    RemoteNamesStore.publish(this, changed, removed);
  }

  /**
   * The tenant a command acts on: the one named (by name or id) by {@code nameOrId}, the
   * repository's first tenant when null; a clear error for an unknown one.
   */
  public Tenants.Ref tenant(@Nullable String nameOrId) {
    Tenants all = tenants();
    if (nameOrId == null) {
      TenantId first = config.tenant();
      return new Tenants.Ref(all.nameOf(first).orElse(Tenants.FIRST_TENANT), first);
    }
    return all.resolve(nameOrId);
  }

  // ---------------------------------------------------------------- computes

  /** Every compute node, by name. */
  public List<ComputeNode> computes() {
    Path d = computesDir();
    if (!Files.isDirectory(d)) {
      return List.of();
    }
    List<ComputeNode> out = new ArrayList<>();
    try (Stream<Path> s = Files.list(d)) {
      for (Path p : s.sorted().toList()) {
        if (Files.exists(p.resolve(ComputeSpec.FILE_NAME))) {
          out.add(node(ComputeSpec.load(p.resolve(ComputeSpec.FILE_NAME))));
        }
      }
    } catch (IOException e) {
      throw new ControlPlaneException("cannot list " + d + ": " + e.getMessage(), e);
    }
    return out;
  }

  public Optional<ComputeNode> findCompute(String name) {
    Path f = computesDir().resolve(name).resolve(ComputeSpec.FILE_NAME);
    return Files.exists(f) ? Optional.of(node(ComputeSpec.load(f))) : Optional.empty();
  }

  /** The compute named {@code name}; a clear error if there is none. */
  public ComputeNode compute(String name) {
    return findCompute(name)
        .orElseThrow(
            () -> {
              List<String> names = computes().stream().map(c -> c.spec().name()).toList();
              return new ControlPlaneException(
                  "unknown compute '"
                      + name
                      + "' "
                      + (names.isEmpty()
                          ? "(there are none; create one with `zenith pg create <name>`)"
                          : "(computes: " + String.join(", ", names) + ")"));
            });
  }

  ComputeNode node(ComputeSpec spec) {
    return new ComputeNode(
        spec, computesDir().resolve(spec.name()), config.computeDataPath().resolve(spec.name()));
  }

  // ---------------------------------------------------------------- locking

  /** The repository's lock file. */
  public static final String LOCK_FILE = ".lock";

  /**
   * Takes the repository's lock for a command that changes it; released by closing. Another command
   * holding it makes this one fail at once with a message naming the holder's pid.
   */
  public Lock lock() {
    return lock(dir);
  }

  /**
   * Takes the lock of the repository at {@code dir}, which must exist ({@code init} takes it before
   * it writes anything else).
   *
   * @throws ControlPlaneException if another command (or another holder in this process) holds it
   */
  static Lock lock(Path dir) {
    try {
      return new Lock(DirectoryLock.acquire(dir, LOCK_FILE));
    } catch (DirectoryLock.InUseException e) {
      throw new ControlPlaneException(
          "repository "
              + e.directory()
              + " is in use by "
              + (e.heldByThisProcess() ? "this process" : "another zenith command")
              + (e.holderPid().isPresent()
                  ? " (pid " + e.holderPid().getAsLong() + ")"
                  : " (pid unknown)")
              + "; try again when it ends",
          e);
    } catch (IOException e) {
      throw new ControlPlaneException("cannot lock " + dir + ": " + e.getMessage(), e);
    }
  }

  /**
   * The repository lock of one command ({@link DirectoryLock} on {@code .lock}, with the holder's
   * pid in it); {@link #close()} releases it.
   */
  public static final class Lock implements AutoCloseable {
    private final DirectoryLock lock;

    Lock(DirectoryLock lock) {
      this.lock = lock;
    }

    @Override
    public void close() {
      try {
        lock.close();
      } catch (IOException e) {
        // the lock goes with the process anyway
      }
    }
  }

  // ---------------------------------------------------------------- paths PostgreSQL can use

  /**
   * True if {@code user} can traverse every existing directory on the way to {@code dir} (missing
   * ones will be created 0755). Only meaningful when PostgreSQL runs as another user than this
   * process.
   */
  static boolean traversableBy(Path dir, String user) {
    for (Path p = dir.toAbsolutePath().normalize(); p != null; p = p.getParent()) {
      if (!Files.isDirectory(p)) {
        continue;
      }
      try {
        PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class);
        Set<PosixFilePermission> perms = a.permissions();
        boolean ok;
        if (a.owner().getName().equals(user)) {
          ok = perms.contains(PosixFilePermission.OWNER_EXECUTE);
        } else if (a.group().getName().equals(user)) {
          ok = perms.contains(PosixFilePermission.GROUP_EXECUTE);
        } else {
          ok = perms.contains(PosixFilePermission.OTHERS_EXECUTE);
        }
        if (!ok) {
          return false;
        }
      } catch (IOException | UnsupportedOperationException e) {
        return false;
      }
    }
    return true;
  }
}
