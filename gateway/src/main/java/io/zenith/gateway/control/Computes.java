package io.zenith.gateway.control;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.page.fuse.FuseSupport;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Compute nodes, the façade the CLI uses: create, start (a primary: an election among the
 * safekeepers first, which then pull its WAL and serve it to the pageserver, or without safekeepers
 * WAL straight to the pageserver; then a fresh basebackup, configuration, {@code pg_ctl start}),
 * stop, destroy, and {@code export} (a standalone data directory). The work is in {@link
 * PrimaryElection} and {@link PageserverStandby} (how a primary's WAL becomes durable), {@link
 * ComputeConfig} (what is written into a data directory), {@link PgPrograms} ({@code pg_ctl}) and
 * {@link Ports}. Blocking; output (progress, results) goes to the given writer. Not thread-safe.
 */
public final class Computes {
  /** Name of the replication slot and standby the pageserver uses on a primary (no safekeepers). */
  public static final String PAGESERVER_STANDBY = "pageserver";

  /**
   * How long a primary on safekeepers gets for a clean stop before it is stopped immediately: its
   * walsenders wait for standbys' confirmations, which never come from safekeepers that are down or
   * stuck, and an immediate stop loses nothing committed (commits returned only once a majority of
   * safekeepers had them).
   */
  private static final Duration SAFEKEEPER_STOP_TIMEOUT = Duration.ofSeconds(20);

  private final Repository repo;
  private final PrintWriter out;
  private final PrintWriter err;

  /** Progress and results go to {@code out}, warnings ("warning: …") to {@code err}. */
  public Computes(Repository repo, PrintWriter out, PrintWriter err) {
    this.repo = repo;
    this.out = out;
    this.err = err;
  }

  /**
   * Creates a compute on {@code branch} of the first tenant: a primary, or read-only at {@code
   * lsn}, with no settings of its own.
   */
  public ComputeNode create(String name, String branch, Optional<Lsn> lsn, Optional<Integer> port)
      throws IOException {
    return create(name, repo.config().tenant(), branch, lsn, port, List.of(), Optional.empty());
  }

  /**
   * Whether a compute is lazy when {@code --storage} is not given (and FUSE works): not yet. Issue
   * 13 makes lazy the default only where its speed targets hold, which are not measured, and GC may
   * still remove the history at a running lazy compute's start LSN (ADR 0021 point 6).
   */
  static final boolean LAZY_BY_DEFAULT = false;

  /**
   * The storage of a new compute (ADR 0021): what was asked for, which for lazy needs a machine
   * where FUSE works ({@code fuseProblem} empty); else full, or with {@code lazyByDefault} lazy
   * where FUSE works and full otherwise with one warning line on {@code err} saying why.
   */
  static ComputeSpec.Storage storage(
      Optional<ComputeSpec.Storage> requested,
      boolean lazyByDefault,
      Optional<String> fuseProblem,
      PrintWriter err) {
    if (requested.isPresent()) {
      if (requested.get() == ComputeSpec.Storage.LAZY && fuseProblem.isPresent()) {
        throw new ControlPlaneException(
            "cannot create a lazy compute: "
                + fuseProblem.get()
                + "; use --storage full, or fix FUSE");
      }
      return requested.get();
    }
    if (!lazyByDefault) {
      return ComputeSpec.Storage.FULL;
    }
    if (fuseProblem.isPresent()) {
      err.println(
          "warning: the compute's storage is full (a full basebackup at every start), not lazy: "
              + fuseProblem.get());
      return ComputeSpec.Storage.FULL;
    }
    return ComputeSpec.Storage.LAZY;
  }

  /**
   * Creates a compute on {@code branch} of {@code tenant}: a primary, or read-only at {@code lsn},
   * with PostgreSQL {@code settings} (checked by {@link ComputeSettings#parse}) and {@code storage}
   * (default: {@link #storage}). Compute names and ports are unique in the repository, whatever the
   * tenant.
   */
  public ComputeNode create(
      String name,
      TenantId tenant,
      String branch,
      Optional<Lsn> lsn,
      Optional<Integer> port,
      List<ComputeSettings.Setting> settings,
      Optional<ComputeSpec.Storage> storage)
      throws IOException {
    ComputeSpec.checkName(name);
    SortedMap<String, String> s = new TreeMap<>();
    settings.forEach(x -> s.put(x.name(), x.value()));
    ComputeSettings.checkKnown(repo.pg(), s.keySet());
    if (repo.findCompute(name).isPresent()) {
      throw new ControlPlaneException(
          "compute '" + name + "' already exists (see `zenith pg list`)");
    }
    TimelineId timeline = repo.branches(tenant).get(branch);
    if (lsn.isPresent()) {
      PageserverClient ps = repo.pageserver();
      if (ps.isUp()) {
        ps.checkLsnOnTimeline(tenant, branch, timeline, lsn.get(), "create a compute on");
      } else {
        out.println(
            "note: the pageserver is not running, so LSN "
                + lsn.get()
                + " is checked when the compute starts");
      }
    }
    ComputeSpec.Storage kind = storage(storage, LAZY_BY_DEFAULT, FuseSupport.unusable(), err);
    Ports ports = new Ports(repo);
    int p = port.isPresent() ? ports.check(port.get()) : ports.allocate();
    ComputeSpec spec =
        new ComputeSpec(
            name,
            tenant.toString(),
            timeline.toString(),
            branch,
            lsn.map(Lsn::toString).orElse(null),
            p,
            s,
            null,
            kind.toString());
    ComputeNode node = repo.node(spec);
    Files.createDirectories(repo.computesDir());
    if (!Files.exists(node.nodeDir())) {
      Files.createDirectory(node.nodeDir());
      Files.setPosixFilePermissions(node.nodeDir(), PosixFilePermissions.fromString("rwxr-xr-x"));
    }
    spec.write(node.nodeDir().resolve(ComputeSpec.FILE_NAME));
    return node;
  }

  /**
   * Changes a stopped compute's settings: {@code set} (each also replaces what ALTER SYSTEM set for
   * that name, which would override it), then {@code unset} (from both). A running compute's
   * settings change through ALTER SYSTEM: they are written into its files at start.
   */
  public ComputeNode configure(
      ComputeNode node, List<ComputeSettings.Setting> set, List<String> unset) throws IOException {
    if (node.running()) {
      throw new ControlPlaneException(
          "compute '"
              + node.spec().name()
              + "' is running: change its settings with ALTER SYSTEM, or stop it first with"
              + " `zenith pg stop "
              + node.spec().name()
              + "`");
    }
    node = AlterSystemKeeper.keep(repo, node, err);
    SortedMap<String, String> settings = new TreeMap<>(node.spec().settings());
    SortedMap<String, String> altered = new TreeMap<>(node.spec().alterSystem());
    set.forEach(x -> settings.put(x.name(), x.value()));
    ComputeSettings.checkKnown(repo.pg(), set.stream().map(ComputeSettings.Setting::name).toList());
    set.forEach(x -> altered.remove(x.name()));
    for (String name : unset) {
      ComputeSettings.checkSettable(name);
      if (settings.remove(name) == null && altered.remove(name) == null) {
        throw new ControlPlaneException(
            "compute '" + node.spec().name() + "' has no setting '" + name + "'");
      }
      altered.remove(name);
    }
    ComputeSpec spec = node.spec().withSettings(settings).withAlterSystem(altered);
    spec.write(node.nodeDir().resolve(ComputeSpec.FILE_NAME));
    return repo.node(spec);
  }

  /**
   * What ALTER SYSTEM set on a compute: the live {@code postgresql.auto.conf} of a running one,
   * else what its last run left in {@code node.toml}.
   */
  public SortedMap<String, String> alterSystem(ComputeNode node) throws IOException {
    Path auto = node.pgdata().resolve(ComputeConfig.AUTO_CONF);
    if (node.running() && Files.isReadable(auto)) {
      return ComputeSettings.parseAutoConf(Files.readString(auto)).settings();
    }
    return node.spec().alterSystem();
  }

  /** Starts a compute from a fresh basebackup; returns the LSN it starts at. */
  public Lsn start(ComputeNode node) throws IOException {
    PageserverClient ps = repo.pageserver();
    // ALTER SYSTEM of a run that ended without `zenith pg stop` (a crash, pg_ctl by hand)
    node = AlterSystemKeeper.keep(repo, node, err);
    node = AlterSystemKeeper.restorable(repo, node, err);
    ComputeSpec spec = node.spec();
    if (spec.lazy() && node.running() && new ComputeAgent(node).running().isEmpty()) {
      // failed: its agent and the agent's watchdog are gone, PostgreSQL reads a dead mount
      err.println(
          "warning: compute '"
              + spec.name()
              + "' runs without its compute agent; stopping it immediately first");
      PgPrograms.stopImmediately(repo.pg(), node, true);
    }
    ApiModel.TimelineInfo info = checkStartable(node, ps);
    Safekeepers sks = repo.safekeepers();
    boolean viaSafekeepers = spec.primary() && !sks.none();
    PgDistribution pg = repo.pg();
    if (spec.lazy()) {
      Optional<String> problem = FuseSupport.unusable();
      if (problem.isPresent()) {
        throw new ControlPlaneException(
            "cannot start lazy compute '"
                + spec.name()
                + "': "
                + problem.get()
                + "; recreate it with --storage full, or fix FUSE");
      }
    }
    pg.createOwnedDirectory(node.dataRoot());
    // a dead agent's mounts (ADR 0021) go before the data directory under them
    ComputeAgent agent = new ComputeAgent(node);
    agent.stop();
    Basebackups.deleteTree(node.pgdata());
    Files.deleteIfExists(node.termFile());
    PrimaryElection election = new PrimaryElection(repo, out, err);
    Lsn lsn;
    Election.Result elected = null;
    if (viaSafekeepers) {
      elected = election.electAndFetch(node, ps, info, pg);
      lsn = elected.startLsn();
    } else {
      if (spec.primary()) {
        lsn = Lsn.parse(info.lastRecordLsn());
      } else {
        lsn = spec.pinnedLsn().orElseThrow();
        ps.checkLsnOnTimeline(
            spec.tenant(), spec.branch(), spec.timeline(), lsn, "start a compute on");
      }
      fetch(spec.branch(), spec.tenant(), spec.timeline(), lsn, node.pgdata(), pg, spec.lazy());
    }
    ComputeConfig.writeCompute(
        node,
        pg,
        viaSafekeepers
            ? sks.all().stream().map(RepoConfig.SafekeeperAddresses::id).toList()
            : List.of());

    if (spec.lazy()) {
      startAgent(agent, lsn, pg);
    }
    long logFrom = Files.exists(node.logFile()) ? Files.size(node.logFile()) : 0;
    PgPrograms.RunResult r = PgPrograms.start(pg, node);
    if (r.exit() != 0) {
      if (node.running()) {
        PgPrograms.stopImmediately(pg, node, true);
      }
      agent.stop();
      throw new ControlPlaneException(
          "compute '"
              + spec.name()
              + "' did not start: "
              + PgPrograms.lastProblem(node.logFile(), logFrom, r.output())
              + " (see "
              + node.logFile()
              + (spec.settings().isEmpty() && spec.alterSystem().isEmpty()
                  ? ""
                  : "; its settings: `zenith pg config " + spec.name() + "`")
              + ")");
    }
    if (elected != null) {
      election.attach(node, elected.term(), pg);
      DurableFiles.write(
          node.termFile(), (elected.term() + "\n").getBytes(StandardCharsets.US_ASCII));
    } else if (spec.primary()) {
      new PageserverStandby(repo, out, err).attach(node, ps, pg);
    }
    return lsn;
  }

  /**
   * Why {@code node} cannot start, as an exception: it runs already, the pageserver does not, the
   * branch has another running primary, its port is taken, or its timeline is missing or broken on
   * the pageserver. Returns the pageserver's view of the timeline.
   */
  private ApiModel.TimelineInfo checkStartable(ComputeNode node, PageserverClient ps) {
    ComputeSpec spec = node.spec();
    Optional<Long> pid = node.runningPid();
    if (pid.isPresent()) {
      throw new ControlPlaneException(
          "compute '"
              + spec.name()
              + "' is already running (pid "
              + pid.get()
              + "); stop it with `zenith pg stop "
              + spec.name()
              + "`");
    }
    ps.status(); // a clear error if the pageserver is not running
    if (spec.primary()) {
      for (ComputeNode other : repo.computes()) {
        if (!other.spec().name().equals(spec.name())
            && other.spec().primary()
            && other.spec().timelineId().equals(spec.timelineId())
            && other.running()) {
          throw new ControlPlaneException(
              "compute '"
                  + other.spec().name()
                  + "' already runs as the primary of branch '"
                  + spec.branch()
                  + "' (one primary per branch); stop it first, or create a read-only"
                  + " compute with --lsn");
        }
      }
    }
    if (!Ports.free(spec.port())) {
      throw new ControlPlaneException(
          "port "
              + spec.port()
              + " of compute '"
              + spec.name()
              + "' is in use by another program; free it, or recreate the compute with --port");
    }
    ApiModel.TimelineInfo info = ps.branchTimeline(spec.tenant(), spec.branch(), spec.timeline());
    if (info.brokenReason() != null) {
      throw new ControlPlaneException(
          "branch '" + spec.branch() + "' is broken on the pageserver: " + info.brokenReason());
    }
    return info;
  }

  /**
   * Starts the compute agent of a lazy compute at {@code lsn}: "starting compute agent ... running
   * (pid N) after T s: base/ and global/ at LSN".
   */
  private void startAgent(ComputeAgent agent, Lsn lsn, PgDistribution pg) {
    ComputeSpec spec = agent.node().spec();
    out.print("starting compute agent ...");
    out.flush();
    long t0 = System.nanoTime();
    long pid;
    try {
      RepoAuth auth = repo.auth();
      // the tenant's token: the agent reads pages of its own tenant only, for as long as it runs
      String token = auth.enabled() ? auth.issue(Claims.tenant(spec.tenant()), null) : null;
      pid = agent.start(lsn, repo.config().pageserverPg(), token, pg);
    } catch (ControlPlaneException e) {
      out.println(" failed");
      throw e;
    }
    out.printf(
        Locale.ROOT,
        " running (pid %d) after %.1f s: base/ and global/ from the pageserver at %s, log %s%n",
        pid,
        (System.nanoTime() - t0) / 1e9,
        lsn,
        agent.logFile());
  }

  private void fetch(
      String branch,
      TenantId tenant,
      TimelineId timeline,
      Lsn lsn,
      Path target,
      PgDistribution pg,
      boolean slim) {
    Basebackups.fetchShowingProgress(
        repo.config().pageserverPg(),
        repo.auth().adminToken(),
        branch,
        tenant,
        timeline,
        lsn,
        target,
        pg,
        slim,
        out);
  }

  /**
   * Stops a compute ({@code pg_ctl stop -m fast}: a primary's walsenders first hand every record to
   * its synchronous standbys), immediately if that does not end in time. For a primary on the
   * pageserver, tells the pageserver to stop streaming; one on safekeepers leaves the pageserver
   * reading from them, so it still receives what the compute committed last, and tells every
   * safekeeper that the compute of its term has stopped (best effort: one warning line each on
   * {@code err} for those that were not told). A lazy compute's agent stops after PostgreSQL, and
   * no mount stays behind. Returns false if neither the compute nor its agent was running (a failed
   * compute's state is cleared all the same).
   */
  public boolean stop(ComputeNode node) throws IOException {
    ComputeSpec spec = node.spec();
    if (!node.running()) {
      return new ComputeAgent(node).stop();
    }
    OptionalLong term = node.term();
    boolean onSafekeepers = term.isPresent();
    Duration bound = onSafekeepers ? SAFEKEEPER_STOP_TIMEOUT : PgPrograms.PG_CTL_TIMEOUT;
    PgDistribution pg = repo.pg();
    PgPrograms.RunResult r = PgPrograms.stopFast(pg, node, bound);
    if (r.exit() != 0 && node.running()) {
      err.println(
          "warning: compute '"
              + spec.name()
              + "' did not stop within "
              + bound.toSeconds()
              + " s; stopping it immediately ("
              + (onSafekeepers
                  ? "its safekeepers do not confirm its last WAL; nothing committed is lost"
                  : "WAL not yet at the pageserver is lost")
              + ")");
      PgPrograms.stopImmediately(pg, node, true);
    }
    if (onSafekeepers) {
      new PrimaryElection(repo, out, err).detach(spec, term.getAsLong());
    }
    Files.deleteIfExists(node.termFile());
    if (spec.primary() && !onSafekeepers) {
      new PageserverStandby(repo, out, err).detach(spec);
    }
    // the data directory is rebuilt at the next start: keep what ALTER SYSTEM set (ADR 0012)
    AlterSystemKeeper.keep(repo, node, err);
    new ComputeAgent(node).stop();
    return true;
  }

  /** Deletes a stopped compute's files and its node.toml. */
  public void destroy(ComputeNode node) {
    if (node.running()) {
      throw new IllegalStateException("compute " + node.spec().name() + " is running");
    }
    new ComputeAgent(node).stop();
    Basebackups.deleteTree(node.dataRoot());
    Basebackups.deleteTree(node.nodeDir());
  }

  /**
   * Writes a standalone PostgreSQL 15 data directory of {@code branch} at {@code lsn} (latest if
   * empty) to {@code target}, which must not exist or be empty: a basebackup with a plain
   * configuration (no synchronous standby, trust on local connections), owned by PostgreSQL's user.
   * Everything written is fsynced before it returns ({@link DurableFiles#syncTree}). Returns the
   * LSN.
   */
  public Lsn export(String branch, Optional<Lsn> at, Path target) throws IOException {
    return export(repo.config().tenant(), branch, at, target);
  }

  /** {@link #export(String, Optional, Path)} of a branch of {@code tenant}. */
  public Lsn export(TenantId tenant, String branch, Optional<Lsn> at, Path target)
      throws IOException {
    TimelineId timeline = repo.branches(tenant).get(branch);
    Path dir = target.toAbsolutePath().normalize();
    if (Files.exists(dir)) {
      try (var s = Files.list(dir)) {
        if (!Files.isDirectory(dir) || s.findAny().isPresent()) {
          throw new ControlPlaneException(dir + " exists and is not an empty directory");
        }
      }
      Files.delete(dir);
    }
    if (dir.getParent() == null || !Files.isDirectory(dir.getParent())) {
      throw new ControlPlaneException("the parent directory of " + dir + " does not exist");
    }
    PageserverClient ps = repo.pageserver();
    ps.status();
    ApiModel.TimelineInfo info = ps.branchTimeline(tenant, branch, timeline);
    Lsn lsn;
    if (at.isPresent()) {
      ps.checkLsnOnTimeline(tenant, branch, timeline, at.get(), "export");
      lsn = at.get();
    } else {
      lsn = Lsn.parse(info.lastRecordLsn());
    }
    PgDistribution pg = repo.pg();
    fetch(branch, tenant, timeline, lsn, dir, pg, false);
    ComputeConfig.writeExport(dir, branch, lsn, pg);
    // Durable before success is reported: every file, every directory (bottom-up), and the data
    // directory's entry in its parent. A failed fsync is fatal (FsyncFailedException), not retried.
    DurableFiles.syncTree(dir);
    return lsn;
  }

  /**
   * "compute a runs on it; stop it" or "computes a, b run on it; stop them": why a branch or a
   * tenant cannot be deleted yet, for {@code running} (not empty) compute names.
   */
  static String runOnIt(List<String> running) {
    boolean one = running.size() == 1;
    return "compute"
        + (one ? " " : "s ")
        + String.join(", ", running)
        + (one ? " runs" : " run")
        + " on it; stop "
        + (one ? "it" : "them");
  }
}
