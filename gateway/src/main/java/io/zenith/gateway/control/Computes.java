package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.ingest.pg.PgControl;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Compute nodes: create, start (a primary: an election among the safekeepers first, which then pull
 * its WAL and serve it to the pageserver, or without safekeepers WAL straight to the pageserver;
 * then a fresh basebackup, configuration, {@code pg_ctl start}), stop, destroy, and {@code export}
 * (a standalone data directory). Blocking; output (progress, results) goes to the given writer. Not
 * thread-safe.
 */
public final class Computes {
  /** Name of the replication slot and standby the pageserver uses on a primary (no safekeepers). */
  public static final String PAGESERVER_STANDBY = "pageserver";

  private static final Duration PG_CTL_TIMEOUT = Duration.ofSeconds(120);

  /**
   * How long a primary on safekeepers gets for a clean stop before it is stopped immediately: its
   * walsenders wait for standbys' confirmations, which never come from safekeepers that are down or
   * stuck, and an immediate stop loses nothing committed (commits returned only once a majority of
   * safekeepers had them).
   */
  private static final Duration SAFEKEEPER_STOP_TIMEOUT = Duration.ofSeconds(20);

  /** How long the pageserver gets to receive the WAL up to an election's start LSN. */
  private static final Duration PAGESERVER_CATCH_UP = Duration.ofSeconds(120);

  /** How long {@code pg start} waits for a majority of safekeepers to stream from the compute. */
  private static final Duration SAFEKEEPER_STREAMING = Duration.ofSeconds(20);

  private final Repository repo;
  private final PrintWriter out;
  private final PrintWriter err;

  /** Progress and results go to {@code out}, warnings ("warning: …") to {@code err}. */
  public Computes(Repository repo, PrintWriter out, PrintWriter err) {
    this.repo = repo;
    this.out = out;
    this.err = err;
  }

  // ---------------------------------------------------------------- create

  /** Creates a compute on {@code branch}: a primary, or read-only at {@code lsn}. */
  public ComputeNode create(String name, String branch, Optional<Lsn> lsn, Optional<Integer> port)
      throws IOException {
    ComputeSpec.checkName(name);
    if (repo.findCompute(name).isPresent()) {
      throw new ControlPlaneException(
          "compute '" + name + "' already exists (see `zenith pg list`)");
    }
    TimelineId timeline = repo.branches().get(branch);
    if (lsn.isPresent()) {
      PageserverClient ps = repo.pageserver();
      if (ps.isUp()) {
        checkLsnOnTimeline(
            ps, repo.config().tenant(), branch, timeline, lsn.get(), "create a compute on");
      } else {
        out.println(
            "note: the pageserver is not running, so LSN "
                + lsn.get()
                + " is checked when the compute starts");
      }
    }
    int p = port.isPresent() ? checkPort(name, port.get()) : allocatePort();
    ComputeSpec spec =
        new ComputeSpec(
            name,
            repo.config().defaultTenantId(),
            timeline.toString(),
            branch,
            lsn.map(Lsn::toString).orElse(null),
            p);
    ComputeNode node = repo.node(spec);
    Files.createDirectories(repo.computesDir());
    if (!Files.exists(node.nodeDir())) {
      Files.createDirectory(node.nodeDir());
      Files.setPosixFilePermissions(node.nodeDir(), PosixFilePermissions.fromString("rwxr-xr-x"));
    }
    spec.write(node.nodeDir().resolve(ComputeSpec.FILE_NAME));
    return node;
  }

  /** Checks {@code initdb_lsn <= lsn <= last_record_lsn} of the timeline. */
  static void checkLsnOnTimeline(
      PageserverClient ps,
      TenantId tenant,
      String branch,
      TimelineId timeline,
      Lsn lsn,
      String what) {
    ApiModel.TimelineInfo info = timelineInfo(ps, tenant, branch, timeline);
    Lsn first = Lsn.parse(info.initdbLsn());
    Lsn last = Lsn.parse(info.lastRecordLsn());
    if (lsn.isBefore(first)) {
      throw new ControlPlaneException(
          "cannot "
              + what
              + " "
              + branch
              + " at "
              + lsn
              + ": that is before its history starts at "
              + first
              + " (initdb)");
    }
    if (lsn.isAfter(last)) {
      throw new ControlPlaneException(
          "cannot "
              + what
              + " "
              + branch
              + " at "
              + lsn
              + ": "
              + branch
              + " has WAL only up to "
              + last);
    }
  }

  static ApiModel.TimelineInfo timelineInfo(
      PageserverClient ps, TenantId tenant, String branch, TimelineId timeline) {
    try {
      return ps.timeline(tenant, timeline);
    } catch (JsonHttpClient.ApiError e) {
      if (e.status() == 404) {
        throw new ControlPlaneException(
            "branch '"
                + branch
                + "' (timeline "
                + timeline
                + ") does not exist on the pageserver: "
                + e.getMessage());
      }
      throw new ControlPlaneException("the pageserver: " + e.getMessage());
    }
  }

  private int checkPort(String name, int port) {
    if (port < 1024 || port > 65535) {
      throw new ControlPlaneException("port " + port + " is out of range (1024..65535)");
    }
    for (ComputeNode n : repo.computes()) {
      if (n.spec().port() == port) {
        throw new ControlPlaneException(
            "port " + port + " already belongs to compute '" + n.spec().name() + "'");
      }
    }
    if (!portFree(port)) {
      throw new ControlPlaneException(
          "port " + port + " is in use by another program; choose another with --port");
    }
    return port;
  }

  private int allocatePort() {
    List<Integer> taken =
        new ArrayList<>(repo.computes().stream().map(n -> n.spec().port()).toList());
    // the repository's own servers may be stopped now, their ports are still theirs
    taken.add(repo.config().pageserverHttp().getPort());
    taken.add(repo.config().pageserverPg().getPort());
    for (RepoConfig.SafekeeperAddresses a : repo.config().safekeepers()) {
      taken.add(a.http().getPort());
      taken.add(a.pg().getPort());
    }
    for (int p = repo.config().computePortBase(); p < 65536; p++) {
      if (!taken.contains(p) && portFree(p)) {
        return p;
      }
    }
    throw new ControlPlaneException(
        "no free port from compute_port_base " + repo.config().computePortBase());
  }

  // ---------------------------------------------------------------- start

  /** Starts a compute from a fresh basebackup; returns the LSN it starts at. */
  public Lsn start(ComputeNode node) throws IOException {
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
    PageserverClient ps = repo.pageserver();
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
    if (!portFree(spec.port())) {
      throw new ControlPlaneException(
          "port "
              + spec.port()
              + " of compute '"
              + spec.name()
              + "' is in use by another program; free it, or recreate the compute with --port");
    }
    ApiModel.TimelineInfo info = timelineInfo(ps, spec.tenant(), spec.branch(), spec.timeline());
    if (info.brokenReason() != null) {
      throw new ControlPlaneException(
          "branch '" + spec.branch() + "' is broken on the pageserver: " + info.brokenReason());
    }
    Safekeepers sks = repo.safekeepers();
    boolean viaSafekeepers = spec.primary() && !sks.none();
    PgDistribution pg = repo.pg();
    pg.createOwnedDirectory(node.dataRoot());
    Basebackups.deleteTree(node.pgdata());
    Files.deleteIfExists(node.termFile());
    Lsn lsn;
    Election.Result elected = null;
    if (viaSafekeepers) {
      elected = electAndFetch(node, ps, info, pg);
      lsn = elected.startLsn();
    } else {
      if (spec.primary()) {
        lsn = Lsn.parse(info.lastRecordLsn());
      } else {
        lsn = spec.pinnedLsn().orElseThrow();
        checkLsnOnTimeline(
            ps, spec.tenant(), spec.branch(), spec.timeline(), lsn, "start a compute on");
      }
      fetch(spec.branch(), spec.tenant(), spec.timeline(), lsn, node.pgdata(), pg);
    }
    writeComputeConfig(
        node,
        pg,
        viaSafekeepers
            ? sks.all().stream().map(RepoConfig.SafekeeperAddresses::id).toList()
            : List.of());

    List<String> args =
        List.of(
            "-D",
            node.pgdata().toString(),
            "-l",
            node.logFile().toString(),
            "-w",
            "-t",
            Long.toString(PG_CTL_TIMEOUT.toSeconds()),
            "start");
    long logFrom = Files.exists(node.logFile()) ? Files.size(node.logFile()) : 0;
    RunResult r = run(pg, "pg_ctl", args);
    if (r.exit() != 0) {
      throw new ControlPlaneException(
          "compute '"
              + spec.name()
              + "' did not start: "
              + lastProblem(node.logFile(), logFrom, r.output())
              + " (see "
              + node.logFile()
              + ")");
    }
    if (elected != null) {
      attachSafekeepers(node, elected.term(), pg);
      DurableFiles.write(
          node.termFile(), (elected.term() + "\n").getBytes(StandardCharsets.US_ASCII));
    } else if (spec.primary()) {
      try {
        ps.setWalSource(
            spec.tenant(),
            spec.timeline(),
            ApiModel.WalSource.fromCompute(
                "127.0.0.1", spec.port(), "postgres", PAGESERVER_STANDBY, PAGESERVER_STANDBY));
      } catch (RuntimeException e) {
        run(pg, "pg_ctl", List.of("-D", node.pgdata().toString(), "-m", "immediate", "stop"));
        throw new ControlPlaneException(
            "the pageserver did not take WAL from compute '"
                + spec.name()
                + "', so it was stopped again: "
                + e.getMessage());
      }
      awaitStreaming(ps, spec);
    }
    return lsn;
  }

  private void fetch(
      String branch,
      TenantId tenant,
      TimelineId timeline,
      Lsn lsn,
      Path target,
      PgDistribution pg) {
    out.print("fetching basebackup of " + branch + " at " + lsn + " ...");
    out.flush();
    long t0 = System.nanoTime();
    Basebackups.Result res;
    try {
      res =
          Basebackups.fetch(
              repo.config().pageserverPg(),
              tenant,
              timeline,
              lsn,
              target,
              pg,
              bytes -> {
                out.print(" " + megabytes(bytes) + " ...");
                out.flush();
              });
    } catch (RuntimeException e) {
      out.println(" failed");
      throw e;
    }
    out.printf(
        Locale.ROOT,
        " %s, %d files in %.1f s%n",
        megabytes(res.bytes()),
        res.files(),
        (System.nanoTime() - t0) / 1e9);
  }

  // ---------------------------------------------------------------- a primary with safekeepers

  /**
   * Before a primary starts on safekeepers (DESIGN.md §4): the timeline on every safekeeper
   * (created at the pageserver's last record LSN the first time), an election of a new term whose
   * start L is the end of the WAL a majority holds, the pageserver reading from the safekeepers and
   * caught up to L, and the compute's data directory from a basebackup at L.
   */
  private Election.Result electAndFetch(
      ComputeNode node, PageserverClient ps, ApiModel.TimelineInfo info, PgDistribution pg)
      throws IOException {
    ComputeSpec spec = node.spec();
    Safekeepers sks = repo.safekeepers();
    int quorum = repo.config().quorum();
    List<Safekeepers.Answer> answers = sks.ask(spec.tenant(), spec.timeline());
    List<String> silent = new ArrayList<>();
    for (Safekeepers.Answer a : answers) {
      if (a.timeline().isEmpty() && !a.missing()) {
        silent.add("safekeeper " + a.safekeeper().id() + ": " + a.problem());
      }
    }
    if (answers.size() - silent.size() < quorum) {
      throw new ControlPlaneException(
          "cannot start compute '"
              + spec.name()
              + "': "
              + silent.size()
              + " of "
              + answers.size()
              + " safekeepers do not answer and a majority ("
              + quorum
              + ") must: "
              + String.join("; ", silent));
    }
    // The first start on a timeline creates it on the safekeepers, starting where the pageserver's
    // WAL ends. Its identity (system id, segment size) comes from a safekeeper that has it, else
    // from the basebackup at that LSN, which then also serves the compute if nothing moves.
    Lsn fetchedAt = null;
    if (answers.stream().anyMatch(Safekeepers.Answer::missing)) {
      Identity identity = null;
      for (Safekeepers.Answer a : answers) {
        if (a.timeline().isPresent()) {
          identity = SafekeeperApiModel.status(a.timeline().get()).identity();
          break;
        }
      }
      if (identity == null) {
        fetchedAt = Lsn.parse(info.lastRecordLsn());
        fetch(spec.branch(), spec.tenant(), spec.timeline(), fetchedAt, node.pgdata(), pg);
        PgControl control =
            PgControl.parse(Files.readAllBytes(node.pgdata().resolve("global/pg_control")));
        identity =
            new Identity(
                spec.tenant(),
                spec.timeline(),
                control.systemId(),
                PgDistribution.SUPPORTED_MAJOR,
                control.walSegmentSize(),
                fetchedAt);
      }
      sks.createMissing(answers, identity, out);
    }

    out.print(
        "electing a term of branch "
            + spec.branch()
            + (sks.all().size() == 1
                ? " on safekeeper " + sks.ids()
                : " among safekeepers " + sks.ids() + " (majority " + quorum + ")")
            + " ...");
    out.flush();
    Election.Result r;
    try {
      r = sks.elect(spec.tenant(), spec.timeline());
    } catch (ControlPlaneException e) {
      out.println(" failed");
      throw e;
    }
    out.println(
        " term "
            + r.term()
            + ", WAL up to "
            + r.startLsn()
            + " (donor safekeeper "
            + r.donor()
            + ", voters "
            + r.members().stream().map(String::valueOf).collect(Collectors.joining(", "))
            + ")");

    // The pageserver takes the timeline's WAL from the safekeepers from now on, never from the
    // compute: only what a majority holds (the commit LSN) reaches it.
    try {
      ps.setWalSource(
          spec.tenant(), spec.timeline(), ApiModel.WalSource.fromSafekeepers(sks.endpoints()));
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(
          "the pageserver did not take the WAL of branch '"
              + spec.branch()
              + "' from the safekeepers: "
              + e.getMessage());
    }
    awaitPageserverAt(ps, spec, r.startLsn());
    if (fetchedAt == null || !fetchedAt.equals(r.startLsn())) {
      Basebackups.deleteTree(node.pgdata());
      fetch(spec.branch(), spec.tenant(), spec.timeline(), r.startLsn(), node.pgdata(), pg);
    }
    return r;
  }

  /** Waits (bounded) until the pageserver has ingested the timeline's WAL up to {@code lsn}. */
  private void awaitPageserverAt(PageserverClient ps, ComputeSpec spec, Lsn lsn) {
    long deadline = System.nanoTime() + PAGESERVER_CATCH_UP.toNanos();
    boolean told = false;
    while (true) {
      ApiModel.TimelineInfo t = ps.timeline(spec.tenant(), spec.timeline());
      Lsn at = Lsn.parse(t.lastRecordLsn());
      if (!at.isBefore(lsn)) {
        if (told) {
          out.println(" done");
        }
        return;
      }
      if (System.nanoTime() > deadline) {
        if (told) {
          out.println(" failed");
        }
        ApiModel.WalReceiverInfo w = t.walReceiver();
        throw new ControlPlaneException(
            "the pageserver has the WAL of branch '"
                + spec.branch()
                + "' only up to "
                + at
                + " after "
                + PAGESERVER_CATCH_UP.toSeconds()
                + " s, the safekeepers up to "
                + lsn
                + (w == null || w.lastError() == null ? "" : " (" + w.lastError() + ")")
                + "; see "
                + repo.pageserverDir().resolve("pageserver.log"));
      }
      if (!told) {
        out.print(
            "waiting for the pageserver to receive WAL up to " + lsn + " (at " + at + ") ...");
        out.flush();
        told = true;
      }
      ServiceProcess.sleep(100);
    }
  }

  /**
   * Tells every safekeeper to pull WAL of {@code term} from the running compute. A majority must
   * accept (else the compute could never commit: it is stopped again); the others learn it from
   * their peers once they run. Then waits (bounded) until a majority streams.
   */
  private void attachSafekeepers(ComputeNode node, long term, PgDistribution pg) {
    ComputeSpec spec = node.spec();
    Safekeepers sks = repo.safekeepers();
    int quorum = repo.config().quorum();
    List<Integer> accepted = new ArrayList<>();
    Map<Integer, String> problems =
        sks.setCompute(
            spec.tenant(),
            spec.timeline(),
            new ComputeSource(term, "127.0.0.1", spec.port(), "postgres"),
            accepted);
    if (accepted.size() < quorum) {
      run(pg, "pg_ctl", List.of("-D", node.pgdata().toString(), "-m", "immediate", "stop"));
      // Best effort, quietly: the error below is the command's one line.
      sks.stopCompute(spec.tenant(), spec.timeline(), term);
      throw new ControlPlaneException(
          "only "
              + accepted.size()
              + " of "
              + sks.all().size()
              + " safekeepers took WAL from compute '"
              + spec.name()
              + "', a majority ("
              + quorum
              + ") must, so it was stopped again: "
              + problems.entrySet().stream()
                  .map(e -> "safekeeper " + e.getKey() + ": " + e.getValue())
                  .collect(Collectors.joining("; ")));
    }
    problems.forEach(
        (id, problem) ->
            err.println(
                "warning: safekeeper "
                    + id
                    + " does not pull from compute '"
                    + spec.name()
                    + "' ("
                    + problem
                    + "); the others make the majority"));
    long deadline = System.nanoTime() + SAFEKEEPER_STREAMING.toNanos();
    while (System.nanoTime() < deadline) {
      int streaming = 0;
      for (Safekeepers.Answer a : sks.ask(spec.tenant(), spec.timeline())) {
        if (a.timeline().map(t -> "streaming".equals(t.intake())).orElse(false)) {
          streaming++;
        }
      }
      if (streaming >= quorum) {
        return;
      }
      ServiceProcess.sleep(100);
    }
    err.println(
        "warning: fewer than "
            + quorum
            + " safekeepers stream WAL from compute '"
            + spec.name()
            + "' yet; commits wait until a majority does");
  }

  static String megabytes(long bytes) {
    return String.format(Locale.ROOT, "%d MB", Math.round(bytes / 1e6));
  }

  /** Waits (bounded) until the pageserver streams the primary's WAL; warns if it does not. */
  private void awaitStreaming(PageserverClient ps, ComputeSpec spec) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    String lastError = null;
    while (System.nanoTime() < deadline) {
      ApiModel.TimelineInfo t = ps.timeline(spec.tenant(), spec.timeline());
      ApiModel.WalReceiverInfo w = t.walReceiver();
      if (w != null && "streaming".equals(w.state())) {
        return;
      }
      lastError = w == null ? null : w.lastError();
      ServiceProcess.sleep(100);
    }
    err.println(
        "warning: the pageserver is not streaming WAL from compute '"
            + spec.name()
            + "' yet"
            + (lastError == null ? "" : " (" + lastError + ")")
            + "; commits wait until it does");
  }

  /**
   * postgresql.conf, pg_hba.conf, pg_ident.conf (and standby.signal for a read-only compute); a
   * primary commits through the {@code safekeepers} (their ids), or through the pageserver if there
   * are none.
   */
  private static void writeComputeConfig(
      ComputeNode node, PgDistribution pg, List<Integer> safekeepers) throws IOException {
    ComputeSpec spec = node.spec();
    StringBuilder conf = new StringBuilder();
    conf.append("# Written by `zenith pg start` for compute '")
        .append(spec.name())
        .append("': ")
        .append(
            spec.primary()
                ? "the primary of branch '" + spec.branch() + "'"
                : "read-only on branch '" + spec.branch() + "' at " + spec.lsn())
        .append(", timeline ")
        .append(spec.timelineId())
        .append(".\n# Rewritten at every start: change node.toml, not this file.\n");
    setting(conf, "listen_addresses", "'127.0.0.1'");
    setting(conf, "port", Integer.toString(spec.port()));
    setting(conf, "unix_socket_directories", "''");
    setting(conf, "max_connections", "100");
    setting(conf, "shared_buffers", "128MB");
    setting(conf, "dynamic_shared_memory_type", "posix");
    setting(conf, "log_line_prefix", "'%m [%p] '");
    setting(conf, "timezone", "'UTC'");
    setting(conf, "log_timezone", "'UTC'");
    // What the page store relies on (docs/pg-pitfalls.md §6).
    setting(conf, "wal_level", "replica");
    setting(conf, "wal_log_hints", "on");
    setting(conf, "full_page_writes", "on");
    setting(conf, "track_commit_timestamp", "off");
    // As initdb's defaults: a read-only compute of a basebackup needs at least the values in its
    // pg_control, which the primary (or initdb) wrote.
    setting(conf, "max_wal_senders", "10");
    setting(conf, "max_replication_slots", "10");
    if (spec.primary() && !safekeepers.isEmpty()) {
      conf.append("# The safekeepers are this primary's synchronous standbys (DESIGN.md §3): a")
          .append(" commit returns\n# once a majority has its WAL on disk, so this disk holds")
          .append(" nothing of value (fsync off).\n");
      setting(
          conf,
          "synchronous_standby_names",
          "'ANY "
              + (safekeepers.size() / 2 + 1)
              + " ("
              + safekeepers.stream().map(id -> "sk_" + id).collect(Collectors.joining(", "))
              + ")'");
      setting(conf, "synchronous_commit", "on");
      setting(conf, "fsync", "off");
      conf.append("# A safekeeper further behind loses its slot and catches up from its peers.\n");
      setting(conf, "max_slot_wal_keep_size", "1GB");
      conf.append("# A safekeeper that stops answering is dropped, and shutdown does not wait.\n");
      setting(conf, "wal_sender_timeout", "'10s'");
    } else if (spec.primary()) {
      conf.append("# The pageserver is this primary's synchronous standby (no safekeepers):\n")
          .append("# a commit returns once the pageserver has ingested its WAL.\n");
      setting(conf, "synchronous_standby_names", "'" + PAGESERVER_STANDBY + "'");
      setting(conf, "synchronous_commit", "remote_write");
      setting(conf, "fsync", "on");
      setting(conf, "max_slot_wal_keep_size", "4GB");
    } else {
      setting(conf, "hot_standby", "on");
    }
    Path data = node.pgdata();
    writeOwned(data.resolve("postgresql.conf"), conf.toString(), pg);
    writeTrustAuth(
        data,
        "# Written by `zenith pg start`: trust on the loopback interface, replication included.",
        pg);
    if (!spec.primary()) {
      writeOwned(data.resolve("standby.signal"), "", pg);
    }
  }

  /**
   * {@code pg_hba.conf} trusting local and loopback connections (replication included) under the
   * comment {@code header}, and an empty {@code pg_ident.conf}.
   */
  private static void writeTrustAuth(Path dataDir, String header, PgDistribution pg)
      throws IOException {
    writeOwned(
        dataDir.resolve("pg_hba.conf"),
        header
            + "\n"
            + """
            local   all           all                        trust
            host    all           all         127.0.0.1/32   trust
            host    all           all         ::1/128        trust
            local   replication   all                        trust
            host    replication   all         127.0.0.1/32   trust
            host    replication   all         ::1/128        trust
            """,
        pg);
    writeOwned(dataDir.resolve("pg_ident.conf"), "", pg);
  }

  private static void setting(StringBuilder conf, String name, String value) {
    conf.append(name).append(" = ").append(value).append('\n');
  }

  static void writeOwned(Path file, String content, PgDistribution pg) throws IOException {
    Files.writeString(file, content, StandardCharsets.UTF_8);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
    pg.giveToPgUser(file);
  }

  // ---------------------------------------------------------------- stop

  /**
   * Stops a compute ({@code pg_ctl stop -m fast}: a primary's walsenders first hand every record to
   * its synchronous standbys), immediately if that does not end in time. For a primary on the
   * pageserver, tells the pageserver to stop streaming; one on safekeepers leaves the pageserver
   * reading from them, so it still receives what the compute committed last, and tells every
   * safekeeper that the compute of its term has stopped (best effort: one warning line each on
   * {@code err} for those that were not told). Returns false if the compute was not running.
   */
  public boolean stop(ComputeNode node) throws IOException {
    ComputeSpec spec = node.spec();
    if (!node.running()) {
      return false;
    }
    OptionalLong term = node.term();
    boolean onSafekeepers = term.isPresent();
    Duration bound = onSafekeepers ? SAFEKEEPER_STOP_TIMEOUT : PG_CTL_TIMEOUT;
    PgDistribution pg = repo.pg();
    RunResult r =
        run(
            pg,
            "pg_ctl",
            List.of(
                "-D",
                node.pgdata().toString(),
                "-m",
                "fast",
                "-w",
                "-t",
                Long.toString(bound.toSeconds()),
                "stop"));
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
      run(pg, "pg_ctl", List.of("-D", node.pgdata().toString(), "-m", "immediate", "-w", "stop"));
    }
    if (onSafekeepers) {
      detachSafekeepers(spec, term.getAsLong());
    }
    Files.deleteIfExists(node.termFile());
    if (spec.primary() && !onSafekeepers) {
      PageserverClient ps = repo.pageserver();
      try {
        ps.removeWalSource(spec.tenant(), spec.timeline());
      } catch (ControlPlaneException e) {
        out.println(
            "note: the pageserver is not running; it will stop streaming from compute '"
                + spec.name()
                + "' when the next compute of the branch starts");
      } catch (JsonHttpClient.ApiError e) {
        err.println("warning: the pageserver: " + e.getMessage());
      }
    }
    return true;
  }

  /**
   * Tells every safekeeper that the compute of {@code term} has stopped, so that none keeps trying
   * to pull from it; a safekeeper that is not told (down, or with another term's compute) is one
   * warning line, and learns it from its peers once it runs.
   */
  private void detachSafekeepers(ComputeSpec spec, long term) {
    repo.safekeepers()
        .stopCompute(spec.tenant(), spec.timeline(), term)
        .forEach(
            (id, problem) ->
                err.println(
                    "warning: could not tell safekeeper "
                        + id
                        + " that compute '"
                        + spec.name()
                        + "' (term "
                        + term
                        + ") stopped: "
                        + problem));
    err.flush();
  }

  /** Deletes a stopped compute's files and its node.toml. */
  public void destroy(ComputeNode node) {
    if (node.running()) {
      throw new IllegalStateException("compute " + node.spec().name() + " is running");
    }
    Basebackups.deleteTree(node.dataRoot());
    Basebackups.deleteTree(node.nodeDir());
  }

  // ---------------------------------------------------------------- export

  /**
   * Writes a standalone PostgreSQL 15 data directory of {@code branch} at {@code lsn} (latest if
   * empty) to {@code target}, which must not exist or be empty: a basebackup with a plain
   * configuration (no synchronous standby, trust on local connections), owned by PostgreSQL's user.
   * Everything written is fsynced before it returns ({@link DurableFiles#syncTree}). Returns the
   * LSN.
   */
  public Lsn export(String branch, Optional<Lsn> at, Path target) throws IOException {
    TimelineId timeline = repo.branches().get(branch);
    TenantId tenant = repo.config().tenant();
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
    ApiModel.TimelineInfo info = timelineInfo(ps, tenant, branch, timeline);
    Lsn lsn;
    if (at.isPresent()) {
      checkLsnOnTimeline(ps, tenant, branch, timeline, at.get(), "export");
      lsn = at.get();
    } else {
      lsn = Lsn.parse(info.lastRecordLsn());
    }
    PgDistribution pg = repo.pg();
    fetch(branch, tenant, timeline, lsn, dir, pg);
    writeOwned(
        dir.resolve("postgresql.conf"),
        "# Written by `zenith export` of branch '"
            + branch
            + "' at "
            + lsn
            + ": a standalone PostgreSQL 15 data directory.\n"
            + "# Zenith is not involved any more; edit freely.\n"
            + "listen_addresses = 'localhost'\n"
            + "port = 5432\n"
            + "max_connections = 100\n"
            + "shared_buffers = 128MB\n"
            + "dynamic_shared_memory_type = posix\n"
            + "max_wal_size = 1GB\n"
            + "min_wal_size = 80MB\n"
            + "timezone = 'UTC'\n"
            + "log_timezone = 'UTC'\n",
        pg);
    writeTrustAuth(
        dir,
        "# Written by `zenith export`: trust for local connections, as `initdb -A trust`.",
        pg);
    // Durable before success is reported: every file, every directory (bottom-up), and the data
    // directory's entry in its parent. A failed fsync is fatal (FsyncFailedException), not retried.
    DurableFiles.syncTree(dir);
    return lsn;
  }

  // ---------------------------------------------------------------- helpers

  /** What a PostgreSQL program printed and returned. */
  record RunResult(int exit, String output) {}

  /** Runs a PostgreSQL program as its OS user, in {@code /}; output captured. */
  static RunResult run(PgDistribution pg, String program, List<String> args) {
    try {
      Path out = Files.createTempFile("zenith-", ".out");
      try {
        Process p =
            pg.processBuilder(program, args)
                .directory(new File("/"))
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
        if (!p.waitFor(PG_CTL_TIMEOUT.toSeconds() + 60, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          return new RunResult(-1, program + " did not finish");
        }
        return new RunResult(p.exitValue(), Files.readString(out));
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new ControlPlaneException("cannot run " + program + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ControlPlaneException("interrupted while running " + program);
    }
  }

  /**
   * The last FATAL/ERROR/PANIC line of a log (or of the program's output), for a one-line error.
   */
  static String lastProblem(Path log, long from, String output) {
    String found = null;
    try {
      if (Files.exists(log)) {
        byte[] all = Files.readAllBytes(log);
        String fresh =
            new String(
                all,
                (int) Math.min(from, all.length),
                all.length - (int) Math.min(from, all.length),
                StandardCharsets.UTF_8);
        for (String l : fresh.lines().toList()) {
          if (l.contains("FATAL:") || l.contains("PANIC:") || l.contains("ERROR:")) {
            found = l.strip();
          }
        }
      }
    } catch (IOException e) {
      // fall back to the output
    }
    if (found == null) {
      List<String> lines = output.lines().filter(l -> !l.isBlank()).toList();
      found = lines.isEmpty() ? "no output" : lines.get(lines.size() - 1).strip();
    }
    return found;
  }

  static boolean portFree(int port) {
    try (ServerSocket s = new ServerSocket()) {
      s.setReuseAddress(true);
      s.bind(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port));
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
