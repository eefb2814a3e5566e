package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.WalRecord;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Pipelined WAL redo (ADR 0032): several requests written before their answers are read give the
 * pages one request at a time gives (real WAL of {@link RedoWorkload}: heap and index pages, full
 * page images, will-init records); a request that fails with an ERROR fails alone; a PANIC fails
 * its request, and the requests behind it are answered by a new process, correctly.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalRedoPipelineTest {
  private static final Duration T = Duration.ofSeconds(60);

  private RedoWorkload w;
  private ScratchCluster scratch;
  private List<RedoWorkload.Target> sample;

  @BeforeAll
  void setUp() {
    w = RedoWorkload.get();
    scratch =
        ScratchCluster.create(
            w.cluster.distribution(), Path.of(System.getProperty("java.io.tmpdir")), true, true);
    List<RedoWorkload.Target> all = new ArrayList<>(w.targets());
    Collections.shuffle(all, new Random(7));
    sample = all.subList(0, Math.min(48, all.size()));
  }

  @AfterAll
  void tearDown() {
    if (scratch != null) {
      scratch.close();
    }
  }

  /** A request that PANICs the backend: a heap delete on an empty page. */
  private RedoRequest panic() {
    DecodedRecord delete =
        w.records.stream()
            .filter(r -> TestRecords.isType(r, "Heap", "DELETE") && r.block(0).image() == null)
            .findFirst()
            .orElseThrow();
    var b = delete.block(0);
    return new RedoRequest(
        b.rel(),
        ForkNumber.MAIN,
        b.blockNumber(),
        TestRecords.emptyHeapPage(),
        List.of(delete.raw()));
  }

  /** A request that fails with an ERROR (the process goes on): an FPI record without its image. */
  private RedoRequest redoError(RedoWorkload.Target t) {
    WalRecord bad =
        TestRecords.fpiWithoutImage(t.relation().rel(), t.block(), t.history().getLast().end());
    List<WalRecord> records = new ArrayList<>(t.history().stream().map(r -> r.raw()).toList());
    records.add(bad);
    return new RedoRequest(t.relation().rel(), t.fork(), t.block(), null, records);
  }

  @Test
  void pipelinedPagesEqualOneAtATimeAndAnErrorFailsOnlyItsRequest() {
    List<RedoWorkload.Target> small = new ArrayList<>();
    List<byte[]> expected = new ArrayList<>();
    try (WalRedoProcess p = WalRedoProcess.start(scratch, T)) {
      for (RedoWorkload.Target t : sample) {
        if (p.pipelines(t.request())) {
          small.add(t);
          expected.add(p.apply(t.request(), T));
          assertThat(t.matches(expected.getLast())).as("%s", t).isTrue();
        }
      }
    }
    assertThat(small).hasSizeGreaterThan(20);
    List<RedoRequest> requests = new ArrayList<>(small.stream().map(t -> t.request()).toList());
    int bad = requests.size() / 2;
    requests.add(bad, redoError(small.get(bad)));
    try (WalRedoProcess p = WalRedoProcess.start(scratch, T)) {
      long pid = p.backendPid();
      List<WalRedoProcess.Result> results = p.applyPipelined(requests, T);

      assertThat(results).hasSize(requests.size());
      for (int i = 0, e = 0; i < results.size(); i++) {
        if (i == bad) {
          assertThat(results.get(i))
              .isInstanceOfSatisfying(
                  WalRedoProcess.Result.Failed.class,
                  f -> assertThat(f.error().kind()).isEqualTo(WalRedoException.Kind.REDO_FAILED));
          continue;
        }
        byte[] want = expected.get(e++);
        assertThat(results.get(i))
            .as("request %d", i)
            .isInstanceOfSatisfying(
                WalRedoProcess.Result.Done.class, d -> assertThat(d.page()).isEqualTo(want));
      }
      assertThat(p.isAlive()).isTrue();
      assertThat(p.backendPid()).isEqualTo(pid);
    }
  }

  @Test
  void aPanicFailsItsRequestAndTheOnesBehindItAreLeftUnanswered() {
    List<RedoWorkload.Target> four = sample.subList(0, 4);
    List<RedoRequest> requests = new ArrayList<>(four.stream().map(t -> t.request()).toList());
    requests.add(1, panic());
    try (WalRedoProcess p = WalRedoProcess.start(scratch, T)) {
      List<WalRedoProcess.Result> results = p.applyPipelined(requests, T);

      assertThat(results.get(0))
          .isInstanceOfSatisfying(
              WalRedoProcess.Result.Done.class,
              d -> assertThat(four.get(0).matches(d.page())).isTrue());
      assertThat(results.get(1))
          .isInstanceOfSatisfying(
              WalRedoProcess.Result.Failed.class,
              f -> assertThat(f.error().kind()).isEqualTo(WalRedoException.Kind.CRASHED));
      assertThat(results.subList(2, results.size()))
          .allMatch(r -> r instanceof WalRedoProcess.Result.NotAnswered);
      assertThat(p.isAlive()).isFalse();
    }
  }

  @Test
  void throughTheManagerEveryRequestBehindAPanicIsAnsweredByANewProcess() {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (WalRedoManager manager =
        WalRedoManager.start(
            scratch, WalRedoConfig.defaults().withMaxProcessesPerTenant(1), registry)) {
      List<Mono<Object>> calls = new ArrayList<>();
      for (int i = 0; i < sample.size(); i++) {
        RedoWorkload.Target t = sample.get(i);
        calls.add(
            manager
                .apply("tenant-p", t.request())
                .<Object>map(page -> t.matches(page) ? "ok" : "wrong page: " + t));
        if (i == 5) {
          calls.add(
              manager
                  .apply("tenant-p", panic())
                  .<Object>map(page -> "a PANIC request answered")
                  .onErrorResume(
                      WalRedoException.class,
                      e -> Mono.just(e.kind().name().toLowerCase(java.util.Locale.ROOT))));
        }
      }
      // all queued at once, so the worker takes several into one pipeline
      List<Object> out = Flux.mergeSequential(calls).collectList().block(Duration.ofMinutes(2));

      assertThat(out).hasSize(sample.size() + 1);
      assertThat(out.get(6)).isEqualTo("crashed");
      List<Object> rest = new ArrayList<>(out);
      rest.remove(6);
      assertThat(rest).allMatch("ok"::equals);
      assertThat(registry.get("zenith.walredo.process.starts").counter().count()).isEqualTo(2);
    }
  }
}
