package io.zenith.page.redo;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.page.redo.WalRedoException.Kind;
import io.zenith.page.redo.WalRedoProtocol.Handshake;
import io.zenith.page.redo.WalRedoProtocol.ProtocolException;
import io.zenith.page.redo.WalRedoProtocol.Reply;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalRecord;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One {@code postgres --single} backend on its own copy of the scratch cluster, running the {@code
 * zenith_walredo} loop: pages in, pages out, over its stdin and stdout. Its stderr (PostgreSQL's
 * log) goes to {@code postgres.log} in the process directory and is quoted in crash reports.
 *
 * <p>{@link #apply} blocks the calling thread for the round trip; a watchdog kills the backend when
 * the timeout passes, which ends the blocked read. A request that fails with a {@link
 * Kind#processLost()} kind leaves the process dead; {@link #close} then only cleans up. When the
 * JVM runs as root the backend is a child of {@code runuser}; kills go to the backend itself.
 *
 * <p>Not thread-safe: one thread at a time calls {@link #apply} and {@link #close}; {@link #kill}
 * and the accessors may be called from any thread.
 */
public final class WalRedoProcess implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(WalRedoProcess.class);

  private static final byte[] START_SQL =
      "SELECT zenith_walredo_loop();\n".getBytes(StandardCharsets.US_ASCII);
  private static final int MAX_PREAMBLE = 64 * 1024;
  private static final int PIPE_BUFFER = 64 * 1024;
  private static final Duration EXIT_WAIT = Duration.ofSeconds(10);

  /**
   * Requests whose records exceed this many bytes are sent in parts, each part's result being the
   * next part's base image; this bounds the memory the backend needs per request.
   */
  static final long MAX_PART_BYTES = 64L * 1024 * 1024;

  private final ScratchCluster scratch;
  private final Path dir;
  private final Process process;
  private final Instant started;
  private final OutputStream toBackend;
  private final InputStream fromBackend;
  private final Object lock = new Object();
  private final Watchdog.Deadline deadline = Watchdog.create(this::onDeadline);

  private volatile long backendPid = -1;
  private boolean killed; // guarded by lock
  private boolean inFlight; // guarded by lock
  private boolean timedOut; // guarded by lock
  private long requests;
  private boolean closed;
  private long partLimit = MAX_PART_BYTES;

  private WalRedoProcess(ScratchCluster scratch, Path dir, Process process) {
    this.scratch = scratch;
    this.dir = dir;
    this.process = process;
    this.started = Instant.now();
    this.toBackend = new BufferedOutputStream(process.getOutputStream(), PIPE_BUFFER);
    this.fromBackend = new BufferedInputStream(process.getInputStream(), PIPE_BUFFER);
  }

  /**
   * Copies the scratch template, starts the backend on the copy, calls the loop function and checks
   * the handshake (protocol version, PostgreSQL 15, 8 KiB pages, the scratch cluster's checksum and
   * {@code wal_log_hints} settings).
   *
   * @throws WalRedoException of kind {@link Kind#START_FAILED}, with the backend's log, when any
   *     step fails or the handshake does not arrive within {@code startTimeout}
   */
  public static WalRedoProcess start(ScratchCluster scratch, Duration startTimeout) {
    Path dir = scratch.newProcessDirectory();
    PgDistribution pg = scratch.distribution();
    Process process;
    try {
      List<String> args = new java.util.ArrayList<>(List.of("--single"));
      args.addAll(scratch.backendOptions());
      args.addAll(List.of("-D", dir.resolve("data").toString(), "postgres"));
      ProcessBuilder pb =
          pg.processBuilder("postgres", args).redirectError(dir.resolve("postgres.log").toFile());
      pb.environment().put("LC_ALL", "C");
      process = pb.start();
    } catch (IOException e) {
      ScratchCluster.deleteTree(dir);
      throw new WalRedoException(
          Kind.START_FAILED, "cannot start a WAL-redo backend: " + e.getMessage(), e);
    }
    WalRedoProcess p = new WalRedoProcess(scratch, dir, process);
    synchronized (p.lock) {
      p.inFlight = true;
    }
    p.deadline.arm(startTimeout);
    try {
      p.toBackend.write(START_SQL);
      p.toBackend.flush();
      Handshake h = WalRedoProtocol.readHandshake(p.fromBackend, MAX_PREAMBLE);
      p.check(h);
      p.backendPid = h.pid();
      synchronized (p.lock) {
        p.inFlight = false;
        if (p.timedOut) {
          throw new IOException("handshake arrived after the deadline");
        }
      }
      log.debug("WAL-redo backend {} started in {}", h.pid(), p.dir);
      return p;
    } catch (IOException e) {
      boolean late;
      synchronized (p.lock) {
        late = p.timedOut;
      }
      p.kill();
      String why = late ? "no handshake within " + startTimeout.toMillis() + " ms" : e.getMessage();
      String tail = p.awaitDeathAndLogTail();
      p.cleanUp();
      throw new WalRedoException(
          Kind.START_FAILED, "WAL-redo backend did not start: " + why + tail, e);
    } finally {
      p.deadline.disarm();
    }
  }

  private void check(Handshake h) throws ProtocolException {
    List<String> problems = new ArrayList<>();
    if (h.version() != WalRedoProtocol.VERSION) {
      problems.add(
          "it speaks protocol version " + h.version() + ", expected " + WalRedoProtocol.VERSION);
    }
    if (h.pgVersionNum() / 10000 != PgDistribution.SUPPORTED_MAJOR) {
      problems.add("it runs PostgreSQL " + h.pgVersionNum());
    }
    if (h.blockSize() != PageLayout.BLCKSZ) {
      problems.add("its block size is " + h.blockSize());
    }
    if (h.xlogPageMagic() != WalFormat.XLOG_PAGE_MAGIC) {
      problems.add(String.format("its WAL page magic is %04X", h.xlogPageMagic()));
    }
    if (h.dataChecksums() != scratch.dataChecksums()) {
      problems.add("its data checksums are " + (h.dataChecksums() ? "on" : "off"));
    }
    if (h.walLogHints() != scratch.walLogHints()) {
      problems.add("its wal_log_hints is " + (h.walLogHints() ? "on" : "off"));
    }
    if (h.pid() <= 0) {
      problems.add("it reports pid " + h.pid());
    }
    if (!problems.isEmpty()) {
      throw new ProtocolException("unusable WAL-redo backend: " + String.join("; ", problems));
    }
  }

  /**
   * Rebuilds one page: sends the request, waits for the answer.
   *
   * @return the 8 KiB page as redo left it ({@code pd_checksum} not recomputed)
   * @throws WalRedoException naming the request: {@link Kind#REJECTED} or {@link Kind#REDO_FAILED}
   *     (the process goes on), or {@link Kind#CRASHED}, {@link Kind#TIMEOUT}, {@link Kind#PROTOCOL}
   *     (the process is gone)
   * @throws IllegalArgumentException if one record alone exceeds the protocol's size limit
   */
  public byte[] apply(RedoRequest request, Duration timeout) {
    if (closed) {
      throw new IllegalStateException("WAL-redo process " + backendPid + " is closed");
    }
    if (!isAlive()) {
      throw new WalRedoException(
          Kind.CRASHED, request, "WAL-redo backend " + backendPid + " is not running");
    }
    byte[] page = request.baseImage();
    List<RedoRequest> parts = split(request, partLimit);
    for (RedoRequest part : parts) {
      RedoRequest withBase =
          part == parts.getFirst()
              ? part
              : new RedoRequest(part.rel(), part.fork(), part.blockNumber(), page, part.records());
      page = roundTrip(withBase, request, timeout);
    }
    return page;
  }

  /** Sets the part size (tests use small ones). */
  void partLimit(long bytes) {
    this.partLimit = bytes;
  }

  /** The request in parts of at most {@code limit} bytes of records (usually one part). */
  static List<RedoRequest> split(RedoRequest r, long limit) {
    if (WalRedoProtocol.bodySize(r) <= limit) {
      return List.of(r);
    }
    List<RedoRequest> parts = new ArrayList<>();
    List<WalRecord> current = new ArrayList<>();
    long bytes = 0;
    for (WalRecord rec : r.records()) {
      long size = WalRedoProtocol.RECORD_HEADER_SIZE + rec.totalLength();
      if (!current.isEmpty() && bytes + size > limit) {
        parts.add(new RedoRequest(r.rel(), r.fork(), r.blockNumber(), null, current));
        current = new ArrayList<>();
        bytes = 0;
      }
      current.add(rec);
      bytes += size;
    }
    parts.add(new RedoRequest(r.rel(), r.fork(), r.blockNumber(), null, current));
    parts.set(
        0,
        new RedoRequest(
            r.rel(), r.fork(), r.blockNumber(), r.baseImage(), parts.getFirst().records()));
    return parts;
  }

  private byte[] roundTrip(RedoRequest part, RedoRequest whole, Duration timeout) {
    synchronized (lock) {
      inFlight = true;
      timedOut = false;
    }
    deadline.arm(timeout);
    Reply reply;
    try {
      WalRedoProtocol.writeRequest(toBackend, part);
      toBackend.flush();
      reply = WalRedoProtocol.readReply(fromBackend);
    } catch (IOException e) {
      throw lost(e, whole, timeout);
    } finally {
      deadline.disarm();
      synchronized (lock) {
        inFlight = false;
      }
    }
    return pageOf(reply, whole);
  }

  /**
   * Requests in flight at once in {@link #applyPipelined}, and their bytes at most: the backend
   * answers in order, and neither side can block the other as long as what one side has sent and
   * the other not read fits the pipes (64 KiB on Linux): at most this many 8 KiB answers, and at
   * most {@link #PIPELINE_BYTES} of requests.
   */
  static final int PIPELINE = 4;

  static final long PIPELINE_BYTES = 48 * 1024;

  /** The outcome of one request of {@link #applyPipelined}. */
  public sealed interface Result {
    /** The page as redo left it. */
    record Done(byte[] page) implements Result {}

    /** This request failed (the exception says whether the process is gone). */
    record Failed(WalRedoException error) implements Result {}

    /** Not answered: the process was lost on an earlier request; send it again elsewhere. */
    record NotAnswered() implements Result {}
  }

  /** Whether {@link #applyPipelined} takes {@code r}: one part, small enough for the window. */
  boolean pipelines(RedoRequest r) {
    long body = WalRedoProtocol.bodySize(r);
    return body <= partLimit && WalRedoProtocol.REQUEST_HEADER_SIZE + body <= PIPELINE_BYTES;
  }

  /**
   * Rebuilds several pages with their requests pipelined: the next requests are written while the
   * backend works on the earlier ones, so the backend does not wait for this thread between pages
   * (on a loaded machine, each wake-up of a thread costs more than the redo of a page). The answers
   * are those of {@link #apply} one request after another. Every request must {@link #pipelines};
   * each wait for an answer is bounded by {@code timeout}.
   *
   * @return one result per request, in order
   */
  public List<Result> applyPipelined(List<RedoRequest> requests, Duration timeout) {
    if (closed) {
      throw new IllegalStateException("WAL-redo process " + backendPid + " is closed");
    }
    for (RedoRequest r : requests) {
      if (!pipelines(r)) {
        throw new IllegalArgumentException("request too large to pipeline: " + r);
      }
    }
    List<Result> out = new ArrayList<>(requests.size());
    if (!isAlive()) {
      out.add(
          new Result.Failed(
              new WalRedoException(
                  Kind.CRASHED,
                  requests.getFirst(),
                  "WAL-redo backend " + backendPid + " is not running")));
    }
    int sent = out.size();
    long bytes = 0;
    synchronized (lock) {
      inFlight = true;
      timedOut = false;
    }
    try {
      while (out.size() < requests.size() && (out.isEmpty() || !lostOn(out.getLast()))) {
        boolean wrote = false;
        while (sent < requests.size()
            && sent - out.size() < PIPELINE
            && (sent == out.size() || bytes + size(requests.get(sent)) <= PIPELINE_BYTES)) {
          WalRedoProtocol.writeRequest(toBackend, requests.get(sent));
          bytes += size(requests.get(sent));
          sent++;
          wrote = true;
        }
        if (wrote) {
          toBackend.flush();
        }
        RedoRequest r = requests.get(out.size());
        deadline.arm(timeout);
        Reply reply;
        try {
          reply = WalRedoProtocol.readReply(fromBackend);
        } finally {
          deadline.disarm();
        }
        bytes -= size(r);
        try {
          out.add(new Result.Done(pageOf(reply, r)));
        } catch (WalRedoException e) {
          out.add(new Result.Failed(e));
        }
      }
    } catch (IOException e) {
      out.add(new Result.Failed(lost(e, requests.get(out.size()), timeout)));
    } finally {
      synchronized (lock) {
        inFlight = false;
      }
    }
    while (out.size() < requests.size()) {
      out.add(new Result.NotAnswered());
    }
    return out;
  }

  private static boolean lostOn(Result r) {
    return r instanceof Result.Failed f && f.error().kind().processLost();
  }

  private static long size(RedoRequest r) {
    return WalRedoProtocol.REQUEST_HEADER_SIZE + WalRedoProtocol.bodySize(r);
  }

  /** The failure of a read or write to the backend: it is killed (if not already) and gone. */
  private WalRedoException lost(IOException e, RedoRequest whole, Duration timeout) {
    if (e instanceof ProtocolException) {
      kill();
      return new WalRedoException(
          Kind.PROTOCOL,
          whole,
          "WAL-redo backend " + backendPid + " broke the protocol (" + e.getMessage() + ")",
          e);
    }
    boolean late;
    synchronized (lock) {
      late = timedOut;
    }
    if (late) {
      return new WalRedoException(
          Kind.TIMEOUT,
          whole,
          "no answer within "
              + timeout.toMillis()
              + " ms; WAL-redo backend "
              + backendPid
              + " was killed",
          e);
    }
    kill();
    return new WalRedoException(
        Kind.CRASHED,
        whole,
        "WAL-redo backend " + backendPid + " died" + awaitDeathAndLogTail(),
        e);
  }

  /** The page of a reply, or the reply's error as an exception (the process killed if fatal). */
  private byte[] pageOf(Reply reply, RedoRequest whole) {
    return switch (reply) {
      case Reply.Page(byte[] page) -> {
        requests++;
        yield page;
      }
      case Reply.Error(int kind, String message) when kind == WalRedoProtocol.ERROR_REJECTED ->
          throw new WalRedoException(Kind.REJECTED, whole, "rejected: " + message);
      case Reply.Error(int kind, String message) when kind == WalRedoProtocol.ERROR_REDO ->
          throw new WalRedoException(Kind.REDO_FAILED, whole, "ERROR: " + message);
      case Reply.Error(int kind, String message) -> {
        String tail = awaitDeathAndLogTail();
        kill();
        throw new WalRedoException(
            Kind.CRASHED, whole, "WAL-redo backend " + backendPid + " gave up: " + message + tail);
      }
    };
  }

  /** Watchdog: kill the backend if a request (or the start) is still waiting. */
  private void onDeadline() {
    synchronized (lock) {
      if (!inFlight) {
        return;
      }
      timedOut = true;
    }
    log.warn("WAL-redo backend {} overran its deadline; killing it", backendPid);
    kill();
  }

  /**
   * Kills the backend with SIGKILL (idempotent). The backend itself is addressed: when it runs
   * under {@code runuser}, killing {@code runuser} alone would leave it running. {@code runuser}
   * then reaps it and exits, closing the pipes; it is killed too if it has not after 2 s (it stops
   * itself while its child is stopped, and would not notice the child's death).
   */
  public void kill() {
    synchronized (lock) {
      if (killed) {
        return;
      }
      killed = true;
    }
    List<ProcessHandle> descendants = process.toHandle().descendants().toList();
    descendants.forEach(ProcessHandle::destroyForcibly);
    long pid = backendPid;
    boolean backendIsChild = pid == process.pid();
    if (pid > 0 && !backendIsChild && descendants.stream().noneMatch(h -> h.pid() == pid)) {
      // Orphaned when runuser died first: only a postgres started after this process.
      ProcessHandle.of(pid)
          .filter(h -> h.info().command().map(c -> c.endsWith("/postgres")).orElse(false))
          .filter(h -> h.info().startInstant().map(s -> !s.isBefore(started)).orElse(false))
          .ifPresent(ProcessHandle::destroyForcibly);
    }
    if (backendIsChild || descendants.isEmpty()) {
      process.destroyForcibly();
    } else {
      process
          .onExit()
          .completeOnTimeout(null, 2, TimeUnit.SECONDS)
          .thenRun(
              () -> {
                if (process.isAlive()) {
                  process.destroyForcibly();
                }
              });
    }
  }

  /** Waits a little for the process to end; returns " (exit N): <log tail>" for messages. */
  private String awaitDeathAndLogTail() {
    String exit = "";
    try {
      if (process.waitFor(2, TimeUnit.SECONDS)) {
        exit = " (exit " + process.exitValue() + ")";
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return exit + logTail().map(t -> ": " + t).orElse("");
  }

  /** The last lines of the backend's stderr, joined with " | ". */
  Optional<String> logTail() {
    Path logFile = dir.resolve("postgres.log");
    try (RandomAccessFile f = new RandomAccessFile(logFile.toFile(), "r")) {
      long len = f.length();
      int n = (int) Math.min(len, 4096);
      byte[] b = new byte[n];
      f.seek(len - n);
      f.readFully(b);
      List<String> lines =
          new String(b, StandardCharsets.UTF_8).lines().filter(l -> !l.isBlank()).toList();
      if (len > n && !lines.isEmpty()) {
        lines = lines.subList(1, lines.size()); // first line may be cut
      }
      List<String> last = lines.subList(Math.max(0, lines.size() - 6), lines.size());
      return last.isEmpty() ? Optional.empty() : Optional.of(String.join(" | ", last));
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  /** The backend's pid (from the handshake). */
  public long backendPid() {
    return backendPid;
  }

  /** Pages served so far. */
  public long requestsServed() {
    return requests;
  }

  public boolean isAlive() {
    synchronized (lock) {
      if (killed) {
        return false;
      }
    }
    return process.isAlive();
  }

  /** The directory holding the backend's data directory and log (deleted by {@link #close}). */
  public Path directory() {
    return dir;
  }

  /**
   * Ends the backend cleanly (exit message, end of input, shutdown checkpoint of the scratch copy)
   * or kills it if it does not exit within 10 s, then removes what it left: its directory and, if
   * it died abnormally, its shared memory segment. Idempotent.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (isAlive()) {
      try {
        WalRedoProtocol.writeExit(toBackend);
        toBackend.close();
      } catch (IOException e) {
        // already going away
      }
      try {
        if (!process.waitFor(EXIT_WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
          log.warn("WAL-redo backend {} did not exit; killing it", backendPid);
          kill();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        kill();
      }
    } else {
      kill();
    }
    cleanUp();
  }

  private void cleanUp() {
    deadline.close();
    try {
      process.waitFor(EXIT_WAIT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      toBackend.close();
    } catch (IOException e) {
      // the pipe is gone with the process
    }
    try {
      fromBackend.close();
    } catch (IOException e) {
      // same
    }
    SharedMemoryCleanup.removeOrphan(dir.resolve("data").resolve("postmaster.pid"));
    try {
      ScratchCluster.deleteTree(dir);
    } catch (RuntimeException e) {
      log.warn("cannot delete {}: {}", dir, e.getMessage());
    }
  }

  @Override
  public String toString() {
    return "WalRedoProcess[pid " + backendPid + ", " + dir + "]";
  }
}
