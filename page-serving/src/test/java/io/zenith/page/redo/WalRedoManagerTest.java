package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.page.PageKind;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import reactor.core.publisher.Mono;

/**
 * The redo pool under failure and load: bad input is refused and the process lives on, an ERROR in
 * redo fails one request, a PANIC, a SIGKILL or a hang fails one request and the next one gets a
 * fresh process, many threads at once all get correct pages, idle processes go away, and close ends
 * everything. Requests come from the shared real-WAL workload ({@link RedoWorkload}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalRedoManagerTest {
  private static final String TENANT = "tenant-f";

  private RedoWorkload w;
  private ScratchCluster scratch;
  private WalRedoManager manager;
  private SimpleMeterRegistry registry;

  /** A heap page with a long history, and one with a different relation (an index). */
  private RedoWorkload.Target heap;

  private RedoWorkload.Target index;

  @BeforeAll
  void setUp() {
    w = RedoWorkload.get();
    scratch =
        ScratchCluster.create(
            w.cluster.distribution(), Path.of(System.getProperty("java.io.tmpdir")), true, true);
    heap =
        w.target(
            t ->
                t.kind() == PageKind.HEAP
                    && t.relation().name().equals("h")
                    && t.history().size() >= 10);
    index = w.target(t -> t.kind() == PageKind.BTREE && t.history().size() >= 5);
  }

  @AfterAll
  void tearDown() {
    if (scratch != null) {
      scratch.close();
    }
  }

  @AfterEach
  void closeManager() {
    if (manager != null) {
      manager.close();
      manager = null;
    }
  }

  private WalRedoManager manager(WalRedoConfig config) {
    registry = new SimpleMeterRegistry();
    manager = WalRedoManager.start(scratch, config, registry);
    return manager;
  }

  private static WalRedoConfig config() {
    return WalRedoConfig.defaults().withMaxProcessesPerTenant(1);
  }

  private byte[] apply(RedoRequest r) {
    return manager.apply(TENANT, r).block(Duration.ofSeconds(60));
  }

  private WalRedoException failure(RedoRequest r) {
    AtomicReference<Throwable> err = new AtomicReference<>();
    Mono<byte[]> m = manager.apply(TENANT, r);
    assertThatThrownBy(() -> m.block(Duration.ofSeconds(60)))
        .satisfies(err::set)
        .isInstanceOf(WalRedoException.class);
    return (WalRedoException) err.get();
  }

  private long backendPid() {
    List<WalRedoProcess> ps = manager.processes(TENANT);
    assertThat(ps).hasSize(1);
    return ps.getFirst().backendPid();
  }

  private double counter(String name, String tag, String value) {
    return registry.get(name).tag(tag, value).counter().count();
  }

  private double starts() {
    return registry.get("zenith.walredo.process.starts").counter().count();
  }

  private RedoRequest withRecords(RedoWorkload.Target t, List<WalRecord> records) {
    return new RedoRequest(t.relation().rel(), t.fork(), t.block(), null, records);
  }

  private static List<WalRecord> raw(List<DecodedRecord> records) {
    return records.stream().map(DecodedRecord::raw).toList();
  }

  @Test
  void garbageRecordsAreRejectedAndTheProcessLivesOn() {
    manager(config());
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    long pid = backendPid();
    List<WalRecord> good = raw(heap.history());
    WalRecord second = good.get(1);

    List<WalRecord> badCrc = new ArrayList<>(good);
    badCrc.set(1, TestRecords.corrupted(second));
    WalRedoException e = failure(withRecords(heap, badCrc));
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.REJECTED);
    assertThat(e.getMessage())
        .contains("record 1 at " + second.lsn())
        .contains("incorrect resource manager data checksum")
        .contains(heap.request().target());
    assertThat(e.firstLsn()).isEqualTo(good.getFirst().lsn());
    assertThat(e.lastEnd()).isEqualTo(good.getLast().end());

    List<WalRecord> cut = new ArrayList<>(good);
    cut.set(1, TestRecords.cutShort(second, second.totalLength() - 3));
    e = failure(withRecords(heap, cut));
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.REJECTED);
    assertThat(e.getMessage()).contains("xl_tot_len " + second.totalLength());

    WalRecord longest = good.stream().max((a, b) -> a.totalLength() - b.totalLength()).get();
    List<WalRecord> truncated = new ArrayList<>(good);
    truncated.set(good.indexOf(longest), TestRecords.truncatedConsistently(longest, 26));
    e = failure(withRecords(heap, truncated));
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.REJECTED);
    assertThat(e.getMessage()).contains("at " + longest.lsn());

    DecodedRecord commit =
        w.records.stream()
            .filter(r -> TestRecords.isType(r, "Transaction", "COMMIT"))
            .findFirst()
            .orElseThrow();
    e = failure(withRecords(heap, List.of(commit.raw())));
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.REJECTED);
    assertThat(e.getMessage())
        .contains("Transaction record")
        .contains("cannot be applied to a page");

    assertThat(backendPid()).isEqualTo(pid);
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    assertThat(index.matches(apply(index.request()))).isTrue();
    assertThat(counter("zenith.walredo.requests", "outcome", "rejected")).isEqualTo(4);
    assertThat(starts()).isEqualTo(1);
  }

  @Test
  void anErrorDuringRedoFailsOnlyThatRequest() {
    manager(config());
    assertThat(index.matches(apply(index.request()))).isTrue();
    long pid = backendPid();
    Lsn at = heap.history().getLast().end();
    WalRecord bad = TestRecords.fpiWithoutImage(heap.relation().rel(), heap.block(), at);
    List<WalRecord> records = new ArrayList<>(raw(heap.history()));
    records.add(bad);

    WalRedoException e = failure(withRecords(heap, records));

    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.REDO_FAILED);
    assertThat(e.getMessage())
        .contains("XLOG_FPI record did not contain a full-page image")
        .contains("redo of record " + (records.size() - 1) + ", XLOG/FPI at " + at)
        .contains(heap.request().target());
    assertThat(backendPid()).isEqualTo(pid);
    // the same relation and block right after: nothing of the failed request is left over
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    assertThat(counter("zenith.walredo.requests", "outcome", "redo_failed")).isEqualTo(1);
  }

  @Test
  void aPanicEndsTheProcessAndTheNextRequestGetsANewOne() throws Exception {
    manager(config());
    DecodedRecord delete =
        w.records.stream()
            .filter(r -> TestRecords.isType(r, "Heap", "DELETE") && r.block(0).image() == null)
            .findFirst()
            .orElseThrow();
    var b = delete.block(0);
    RedoRequest r =
        new RedoRequest(
            b.rel(),
            ForkNumber.MAIN,
            b.blockNumber(),
            TestRecords.emptyHeapPage(),
            List.of(delete.raw()));
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    long pid = backendPid();

    WalRedoException e = failure(r);

    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.CRASHED);
    assertThat(e.getMessage())
        .contains("WAL-redo backend " + pid + " died")
        .contains("PANIC:  invalid lp")
        .contains(r.target())
        .contains(delete.lsn().toString());
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    assertThat(backendPid()).isNotEqualTo(pid);
    assertThat(counter("zenith.walredo.restarts", "reason", "crashed")).isEqualTo(1);
    assertNoSharedMemoryLeftBy(pid);
  }

  @Test
  void aProcessKilledDuringARequestFailsOnlyThatRequest() throws Exception {
    manager(config());
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    long pid = backendPid();
    Optional<ProcessHandle> parent = ProcessHandle.of(pid).flatMap(ProcessHandle::parent);
    signal("STOP", pid); // holds the request in the middle: sent, not answered
    CountDownLatch sent = new CountDownLatch(1);
    AtomicReference<Throwable> error = new AtomicReference<>();
    Thread t =
        Thread.ofPlatform()
            .start(
                () -> {
                  sent.countDown();
                  try {
                    apply(index.request());
                  } catch (Throwable x) {
                    error.set(x);
                  }
                });
    sent.await();
    Thread.sleep(300);
    signal("KILL", pid);
    resumeParent(parent);
    t.join(Duration.ofSeconds(30));

    assertThat(error.get()).isInstanceOf(WalRedoException.class);
    WalRedoException e = (WalRedoException) error.get();
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.CRASHED);
    assertThat(e.getMessage())
        .contains("WAL-redo backend " + pid + " died")
        .contains(index.request().target())
        .contains(index.history().getFirst().lsn().toString());
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    assertThat(backendPid()).isNotEqualTo(pid);
    assertNoSharedMemoryLeftBy(pid);
  }

  @Test
  void aHungProcessTimesOutAndIsReplaced() throws Exception {
    manager(config().withRequestTimeout(Duration.ofSeconds(1)));
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    long pid = backendPid();
    signal("STOP", pid);

    long t0 = System.nanoTime();
    WalRedoException e = failure(index.request());
    long ms = (System.nanoTime() - t0) / 1_000_000;

    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.TIMEOUT);
    assertThat(e.getMessage())
        .contains("no answer within 1000 ms")
        .contains("backend " + pid + " was killed")
        .contains(index.request().target());
    assertThat(ms).isBetween(900L, 8000L);
    assertGone(pid);
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    assertThat(backendPid()).isNotEqualTo(pid);
    assertThat(counter("zenith.walredo.restarts", "reason", "timeout")).isEqualTo(1);
  }

  @Test
  void requestsFromManyThreadsAtOnceAreAllCorrect() throws Exception {
    List<RedoWorkload.Target> sample = new ArrayList<>();
    Random random = new Random(42);
    List<RedoWorkload.Target> all = new ArrayList<>(w.targets());
    Collections.shuffle(all, random);
    sample.addAll(all.subList(0, 40));
    byte[][] expected = new byte[sample.size()][];
    try (WalRedoProcess p = WalRedoProcess.start(scratch, Duration.ofSeconds(60))) {
      for (int i = 0; i < sample.size(); i++) {
        expected[i] = p.apply(sample.get(i).request(), Duration.ofSeconds(30));
        assertThat(sample.get(i).matches(expected[i])).as("%s", sample.get(i)).isTrue();
      }
    }
    manager(WalRedoConfig.defaults());
    ConcurrentLinkedQueue<String> wrong = new ConcurrentLinkedQueue<>();
    List<Thread> threads = new ArrayList<>();
    for (int n = 0; n < 4; n++) {
      String tenant = "tenant-" + (n % 2);
      List<Integer> order = new ArrayList<>();
      for (int i = 0; i < sample.size(); i++) {
        order.add(i);
      }
      Collections.shuffle(order, new Random(n));
      threads.add(
          Thread.ofPlatform()
              .start(
                  () -> {
                    for (int i : order) {
                      byte[] page =
                          manager
                              .apply(tenant, sample.get(i).request())
                              .block(Duration.ofSeconds(60));
                      if (!Arrays.equals(page, expected[i])) {
                        wrong.add(sample.get(i).toString());
                      }
                    }
                  }));
    }
    for (Thread t : threads) {
      t.join(Duration.ofMinutes(2));
    }
    assertThat(wrong).isEmpty();
    assertThat(counter("zenith.walredo.requests", "outcome", "ok")).isEqualTo(4 * sample.size());
    assertThat(manager.processes("tenant-0")).hasSizeLessThanOrEqualTo(2);
    assertThat(manager.processes("tenant-1")).hasSizeLessThanOrEqualTo(2);
  }

  @Test
  void idleProcessesStopAndComeBackOnDemand() throws Exception {
    manager(config().withIdleTimeout(Duration.ofMillis(300)));
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    Path dir = manager.processes(TENANT).getFirst().directory();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (manager.liveProcesses() > 0 && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertThat(manager.liveProcesses()).isZero();
    assertThat(dir).doesNotExist();
    assertThat(index.matches(apply(index.request()))).isTrue();
    assertThat(starts()).isEqualTo(2);
  }

  @Test
  void aSecondClusterCopiesTheCachedTemplateAndRedoesTheSame() throws IOException {
    Path parent = Files.createTempDirectory("zenith-template-cache-");
    Files.setPosixFilePermissions(parent, PosixFilePermissions.fromString("rwxr-xr-x"));
    ScratchCluster first = null;
    ScratchCluster second = null;
    ScratchCluster third = null;
    try {
      first = ScratchCluster.create(w.cluster.distribution(), parent, true, true);
      assertThat(first.fromCache()).isFalse();
      Path cache = parent.resolve(TemplateCache.DIR);
      assertThat(Files.getPosixFilePermissions(cache))
          .isEqualTo(PosixFilePermissions.fromString("rwx------"));
      second = ScratchCluster.create(w.cluster.distribution(), parent, true, true);
      assertThat(second.fromCache()).isTrue();
      // the copied template knows nothing of the first cluster: it goes away, the second redoes
      first.close();
      first = null;
      try (WalRedoManager m = WalRedoManager.start(second, config(), new SimpleMeterRegistry())) {
        assertThat(heap.matches(m.apply(TENANT, heap.request()).block(Duration.ofSeconds(60))))
            .isTrue();
      }
      // an entry that does not name its key is not used: the next cluster builds its own
      List<Path> entries;
      try (var s = Files.list(cache)) {
        entries = s.toList();
      }
      assertThat(entries).hasSize(1);
      Files.writeString(entries.getFirst().resolve(TemplateCache.READY), "something else\n");
      third = ScratchCluster.create(w.cluster.distribution(), parent, true, true);
      assertThat(third.fromCache()).isFalse();
      // ... and publishes it in place of the damaged one
      try (ScratchCluster fourth =
          ScratchCluster.create(w.cluster.distribution(), parent, true, true)) {
        assertThat(fourth.fromCache()).isTrue();
      }
      // another configuration is another template
      try (ScratchCluster other =
          ScratchCluster.create(w.cluster.distribution(), parent, true, false)) {
        assertThat(other.fromCache()).isFalse();
      }
    } finally {
      for (ScratchCluster c : Arrays.asList(first, second, third)) {
        if (c != null) {
          c.close();
        }
      }
      ScratchCluster.deleteTree(parent);
    }
  }

  @Test
  void processesAreReplacedAfterMaxRequests() {
    manager(config().withMaxRequestsPerProcess(2));
    for (int i = 0; i < 5; i++) {
      assertThat(heap.matches(apply(heap.request()))).isTrue();
    }
    assertThat(starts()).isEqualTo(3);
  }

  @Test
  void closeFailsQueuedRequestsAndStopsEverything() throws Exception {
    manager(config());
    assertThat(heap.matches(apply(heap.request()))).isTrue();
    WalRedoProcess p = manager.processes(TENANT).getFirst();
    long pid = p.backendPid();
    Optional<ProcessHandle> parent = ProcessHandle.of(pid).flatMap(ProcessHandle::parent);
    signal("STOP", pid); // the first request stays in flight, the other two queued
    ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
    ConcurrentLinkedQueue<byte[]> pages = new ConcurrentLinkedQueue<>();
    CountDownLatch done = new CountDownLatch(3);
    for (int i = 0; i < 3; i++) {
      manager
          .apply(TENANT, heap.request())
          .subscribe(
              x -> {
                pages.add(x);
                done.countDown();
              },
              e -> {
                errors.add(e);
                done.countDown();
              });
    }
    Thread.sleep(200);
    Thread closer = Thread.ofPlatform().start(manager::close);
    // A worker pipelines queued requests (ADR 0032): how many of the three are in flight and how
    // many still queued when close starts depends on timing. Once close has started, a new
    // request is refused at once; then the stopped process may go on.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    boolean closing = false;
    while (!closing && System.nanoTime() < deadline) {
      try {
        manager.apply(TENANT, heap.request()).block(Duration.ofMillis(50));
      } catch (WalRedoException e) {
        closing = e.kind() == WalRedoException.Kind.CLOSED;
      } catch (IllegalStateException e) {
        // block timed out: close has not started yet (this request is queued and fails with it)
      }
    }
    signal("CONT", pid);
    resumeParent(parent);
    closer.join(Duration.ofSeconds(30));
    assertThat(done.await(30, TimeUnit.SECONDS)).isTrue();

    assertThat(closing).isTrue();
    // queued ones failed with CLOSED; the ones in flight finished with the right page
    assertThat(pages).isNotEmpty().allSatisfy(x -> assertThat(heap.matches(x)).isTrue());
    assertThat(errors).hasSize(3 - pages.size());
    assertThat(errors)
        .allSatisfy(
            e -> assertThat(((WalRedoException) e).kind()).isEqualTo(WalRedoException.Kind.CLOSED));
    assertThat(manager.liveProcesses()).isZero();
    assertThat(p.directory()).doesNotExist();
    WalRedoException e = failure(heap.request());
    assertThat(e.kind()).isEqualTo(WalRedoException.Kind.CLOSED);
    manager = null;
  }

  @Test
  void longRequestsAreSentInPartsWithTheSameResult() {
    RedoWorkload.Target t =
        w.targets().stream().max((a, b) -> a.history().size() - b.history().size()).orElseThrow();
    try (WalRedoProcess p = WalRedoProcess.start(scratch, Duration.ofSeconds(60))) {
      byte[] whole = p.apply(t.request(), Duration.ofSeconds(30));
      p.partLimit(4096);
      byte[] inParts = p.apply(t.request(), Duration.ofSeconds(30));
      assertThat(WalRedoProcess.split(t.request(), 4096)).hasSizeGreaterThan(2);
      assertThat(inParts).isEqualTo(whole);
      assertThat(t.matches(whole)).isTrue();
    }
  }

  private static void signal(String sig, long pid) throws IOException, InterruptedException {
    // the shell's builtin kill: /usr/bin/kill (procps) is not in every image
    Process k = new ProcessBuilder("sh", "-c", "kill -s " + sig + " " + pid).inheritIO().start();
    assertThat(k.waitFor()).isZero();
  }

  /**
   * runuser stops itself while its child is stopped (job control) and would not notice the child's
   * death; resume it as a shell would.
   */
  private static void resumeParent(Optional<ProcessHandle> parent)
      throws IOException, InterruptedException {
    if (parent.isPresent()
        && parent.get().info().command().map(c -> c.endsWith("/runuser")).orElse(false)) {
      signal("CONT", parent.get().pid());
    }
  }

  /** The process has ended (a zombie waiting to be reaped counts as ended). */
  private static void assertGone(long pid) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    Path stat = Path.of("/proc/" + pid + "/stat");
    while (System.nanoTime() < deadline) {
      if (!Files.exists(stat)) {
        return;
      }
      try {
        String s = Files.readString(stat);
        if (s.substring(s.lastIndexOf(')') + 2).startsWith("Z")) {
          return;
        }
      } catch (IOException e) {
        return;
      }
      Thread.sleep(50);
    }
    throw new AssertionError("process " + pid + " is still running");
  }

  private static void assertNoSharedMemoryLeftBy(long pid) throws IOException {
    Path shm = Path.of("/proc/sysvipc/shm");
    if (!Files.isReadable(shm)) {
      return;
    }
    for (String line : Files.readAllLines(shm)) {
      String[] c = line.strip().split("\\s+");
      assertThat(c.length > 4 && c[4].equals(Long.toString(pid)))
          .as("shared memory segment of dead backend %d: %s", pid, line)
          .isFalse();
    }
  }
}
