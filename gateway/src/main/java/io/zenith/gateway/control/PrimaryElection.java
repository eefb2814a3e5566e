package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.ingest.pg.PgControl;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A primary on safekeepers (DESIGN.md §4, sync-safekeepers driven by the control plane): before it
 * starts, the timeline on every safekeeper, the election of a new term and the pageserver reading
 * from the safekeepers ({@link #electAndFetch}); once it runs, the safekeepers pulling its WAL
 * ({@link #attach}); once it stopped, the safekeepers told so ({@link #detach}). Progress goes to
 * {@code out}, warnings to {@code err}. Blocking; not thread-safe (the caller holds the
 * repository's lock).
 */
final class PrimaryElection {
  /** How long the pageserver gets to receive the WAL up to an election's start LSN. */
  private static final Duration PAGESERVER_CATCH_UP = Duration.ofSeconds(120);

  /** How long {@code pg start} waits for a majority of safekeepers to stream from the compute. */
  private static final Duration SAFEKEEPER_STREAMING = Duration.ofSeconds(20);

  private final Repository repo;
  private final PrintWriter out;
  private final PrintWriter err;

  PrimaryElection(Repository repo, PrintWriter out, PrintWriter err) {
    this.repo = repo;
    this.out = out;
    this.err = err;
  }

  /**
   * Before a primary starts on safekeepers: the timeline on every safekeeper (created at the
   * pageserver's last record LSN the first time), an election of a new term whose start L is the
   * end of the WAL a majority holds, the pageserver reading from the safekeepers and caught up to
   * L, and the compute's data directory from a basebackup at L.
   */
  Election.Result electAndFetch(
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
        fetch(node, fetchedAt, pg);
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

    Election.Result r = elect(spec, sks, quorum);

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
      fetch(node, r.startLsn(), pg);
    }
    return r;
  }

  /** The election of a new term, with one progress line: term, start LSN, donor, voters. */
  private Election.Result elect(ComputeSpec spec, Safekeepers sks, int quorum) {
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
    return r;
  }

  private void fetch(ComputeNode node, Lsn lsn, PgDistribution pg) {
    ComputeSpec spec = node.spec();
    Basebackups.fetchShowingProgress(
        repo.config().pageserverPg(),
        repo.auth().adminToken(),
        spec.branch(),
        spec.tenant(),
        spec.timeline(),
        lsn,
        node.pgdata(),
        pg,
        spec.lazy(),
        out);
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
  void attach(ComputeNode node, long term, PgDistribution pg) {
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
      PgPrograms.stopImmediately(pg, node, false);
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

  /**
   * Tells every safekeeper that the compute of {@code term} has stopped, so that none keeps trying
   * to pull from it; a safekeeper that is not told (down, or with another term's compute) is one
   * warning line, and learns it from its peers once it runs.
   */
  void detach(ComputeSpec spec, long term) {
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
}
