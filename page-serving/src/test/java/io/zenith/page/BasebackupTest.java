package io.zenith.page;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.DatadirImport;
import io.zenith.ingest.IngestPipeline;
import io.zenith.ingest.WalIngest;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.page.redo.WalRedoConfig;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalSegmentFiles;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/**
 * The pageserver's reason to exist, in one test class: a real cluster's data directory is imported,
 * a workload runs on it, its WAL is ingested, and a basebackup generated from the layer store alone
 * must (1) hold, page by page, what the cluster itself holds, and (2) start as a stock PostgreSQL
 * 15 without WAL replay and serve the same data; a basebackup at an earlier LSN serves the data as
 * of that LSN.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BasebackupTest {
  private static final TenantId TENANT = TenantId.generate();
  private static final TimelineId MAIN = TimelineId.generate();

  @TempDir static Path storeDir;
  private PgCluster source;
  private LayerStore store;
  private WalRedoManager redo;
  private PageReconstructor pages;
  private Timeline timeline;
  private Lsn midpoint;
  private String midpointCount;
  private boolean checksums;

  @BeforeAll
  void ingestAWorkload() throws Exception {
    source = PgCluster.initdb("--data-checksums");
    source.configure(
        Map.of(
            "max_prepared_transactions", "5",
            "fsync", "off",
            "wal_keep_size", "1GB",
            "autovacuum", "off",
            "wal_log_hints", "on"));
    store = LayerStore.open(storeDir, LayerStoreConfig.DEFAULT.withCheckpointDistance(4 << 20));
    store.createTenant(TENANT);
    DatadirImport.Result imported = DatadirImport.run(store, TENANT, MAIN, source.dataDir());
    timeline = imported.timeline();
    checksums =
        PgControl.parse(Files.readAllBytes(source.dataDir().resolve("global/pg_control")))
                .dataChecksumVersion()
            != 0;

    source.start();
    source.sql(
        """
        CREATE TABLE t(id int PRIMARY KEY, v int, pad text);
        INSERT INTO t SELECT g, g % 100, repeat('p', 100) FROM generate_series(1, 10000) g;
        CREATE INDEX t_v ON t(v);
        """);
    midpoint = Lsn.parse(source.sql("SELECT pg_current_wal_insert_lsn()").trim());
    midpointCount = source.sql("SELECT count(*), sum(v) FROM t").trim();
    source.sql(
        """
        UPDATE t SET v = v + 1 WHERE id % 3 = 0;
        DELETE FROM t WHERE id % 10 = 0;
        VACUUM t;
        INSERT INTO t SELECT g, 7, repeat('q', 3000) FROM generate_series(20001, 20300) g;
        CREATE TABLE h(k text); CREATE INDEX h_hash ON h USING hash(k);
        INSERT INTO h SELECT 'k' || g FROM generate_series(1, 3000) g;
        CREATE TABLE g(a int[]); CREATE INDEX g_gin ON g USING gin(a);
        INSERT INTO g SELECT ARRAY[g, g + 1] FROM generate_series(1, 2000) g;
        CREATE TABLE p(pt point); CREATE INDEX p_gist ON p USING gist(pt);
        INSERT INTO p SELECT point(g, g) FROM generate_series(1, 2000) g;
        -- a sorted GiST build: pages reach the disk with GistBuildLSN, WAL carries them as images
        CREATE TABLE ps(pt point);
        INSERT INTO ps SELECT point(g % 97, g / 97) FROM generate_series(1, 20000) g;
        CREATE INDEX ps_gist ON ps USING gist(pt);
        CREATE UNLOGGED TABLE u(i int); INSERT INTO u VALUES (1);
        CREATE SEQUENCE s; SELECT nextval('s') FROM generate_series(1, 50);
        BEGIN; INSERT INTO t VALUES (99999, 1, 'prepared'); PREPARE TRANSACTION 'kept';
        CHECKPOINT;
        UPDATE t SET pad = 'after checkpoint' WHERE id < 50;
        """);
    source.stop();

    redo =
        WalRedoManager.start(
            PgDistribution.detect(),
            WalRedoConfig.defaults().withChecksums(true, true),
            new SimpleMeterRegistry());
    pages = new PageReconstructor(PageReconstructor.using(redo), 64L << 20);
    WalIngest ingest = new WalIngest(timeline, pages::page);
    try (IngestPipeline pipeline =
        new IngestPipeline(
            timeline, ingest, IngestPipeline.Options.DEFAULT, new SimpleMeterRegistry())) {
      Lsn from = imported.lsn();
      pipeline
          .run(
              WalSegmentFiles.read(
                  WalSegmentFiles.sequence(
                      WalSegmentFiles.consecutiveFrom(source.walDir(), from, 16 << 20)),
                  from),
              16 << 20,
              imported.systemId(),
              (a, b) -> {})
          .block(Duration.ofMinutes(5));
    }
  }

  @AfterAll
  void close() {
    if (redo != null) {
      redo.close();
    }
    if (store != null) {
      store.close();
    }
    if (source != null) {
      source.close();
    }
  }

  private PgCluster restore(Lsn lsn) {
    List<ByteBuffer> chunks =
        Basebackup.stream(
                timeline,
                lsn,
                pages,
                (page, blk) -> {
                  if (checksums) {
                    PageChecksum.set(page, blk);
                  }
                })
            .collectList()
            .block(Duration.ofMinutes(5));
    PgCluster c =
        PgCluster.fromDataDirectory(
            dir -> {
              List<InputStream> parts = new ArrayList<>();
              for (ByteBuffer b : chunks) {
                parts.add(
                    new ByteArrayInputStream(
                        b.array(), b.arrayOffset() + b.position(), b.remaining()));
              }
              try (TarArchiveInputStream tar =
                  new TarArchiveInputStream(
                      new SequenceInputStream(Collections.enumeration(parts)))) {
                TarArchiveEntry e;
                while ((e = tar.getNextEntry()) != null) {
                  Path p = dir.resolve(e.getName());
                  if (e.isDirectory()) {
                    Files.createDirectories(p);
                  } else {
                    Files.createDirectories(p.getParent());
                    Files.copy(tar, p);
                  }
                }
              } catch (IOException ex) {
                throw new UncheckedIOException(ex);
              }
            });
    return c.writeMinimalConfig().configure(Map.of("max_prepared_transactions", "5"));
  }

  private static final Pattern REL_FILE =
      Pattern.compile("(\\d+)(?:_(fsm|vm|init))?(?:\\.(\\d+))?");

  @Test
  void getPageIsTimedByOutcomeWhileThePageserversOwnReadsAreNot() {
    SimpleMeterRegistry meters = new SimpleMeterRegistry();
    PageReconstructor timed =
        new PageReconstructor(PageReconstructor.using(redo), 64L << 20, meters);
    Lsn at = timeline.lastRecordLsn();
    Catalog.RelFork rel =
        Catalog.relations(timeline, KeySpace.ALL_RELATIONS, at).stream()
            .filter(r -> r.fork() == ForkNumber.MAIN && r.blocks() > 0)
            .findFirst()
            .orElseThrow();
    Key key = KeySpace.relBlock(rel.rel(), rel.fork(), 0);

    byte[] internal = timed.page(timeline, key, at);
    assertThat(meters.find("zenith.getpage.duration").timers())
        .allSatisfy(t -> assertThat(t.count()).isZero());
    byte[] first = timed.getPage(timeline, key, at);
    byte[] second = timed.getPage(timeline, key, at);

    assertThat(first).isEqualTo(internal).isEqualTo(second);
    // the internal read filled the cache: both requests are answered from it
    assertThat(meters.get("zenith.getpage.duration").tag("outcome", "cache").timer().count())
        .isEqualTo(2);
    assertThat(
            meters.find("zenith.getpage.duration").timers().stream()
                .mapToLong(io.micrometer.core.instrument.Timer::count)
                .sum())
        .isEqualTo(2);
  }

  @Test
  void everyPageOfEveryRelationEqualsTheClustersOwn() throws IOException {
    try (PgCluster restored = restore(timeline.lastRecordLsn())) {
      int pagesCompared = 0;
      List<String> mismatches = new ArrayList<>();
      List<Path> dirs = new ArrayList<>(List.of(source.dataDir().resolve("global")));
      try (Stream<Path> s = Files.list(source.dataDir().resolve("base"))) {
        dirs.addAll(s.sorted().toList());
      }
      for (Path theirsDir : dirs) {
        Path oursDir = restored.dataDir().resolve(source.dataDir().relativize(theirsDir));
        Map<String, byte[]> theirs = relationFiles(theirsDir);
        for (Map.Entry<String, byte[]> f : theirs.entrySet()) {
          Matcher m = REL_FILE.matcher(f.getKey());
          if (!m.matches() || "fsm".equals(m.group(2)) || isUnlogged(theirsDir, m.group(1))) {
            continue; // the FSM is not WAL-logged; unlogged relations are reset on restart
          }
          ForkNumber fork =
              switch (m.group(2) == null ? "" : m.group(2)) {
                case "vm" -> ForkNumber.VISIBILITY_MAP;
                case "init" -> ForkNumber.INIT;
                default -> ForkNumber.MAIN;
              };
          Path ourFile = oursDir.resolve(f.getKey());
          byte[] ours = Files.exists(ourFile) ? Files.readAllBytes(ourFile) : new byte[0];
          byte[] t = f.getValue();
          int n = Math.max(ours.length, t.length) / WalFormat.BLCKSZ;
          for (int blk = 0; blk < n; blk++) {
            byte[] a = page(ours, blk);
            byte[] b = page(t, blk);
            pagesCompared++;
            if (!Arrays.equals(a, b)
                && !PageMasking.equalMasked(a, b, PageKind.detect(b, fork), fork)) {
              mismatches.add(
                  source.dataDir().relativize(theirsDir) + "/" + f.getKey() + " block " + blk);
            }
          }
        }
      }
      assertThat(mismatches)
          .as("pages differing after masking, of %d compared", pagesCompared)
          .isEmpty();
      assertThat(pagesCompared).isGreaterThan(1000);
    }
  }

  private static boolean isUnlogged(Path dir, String relNumber) {
    return Files.exists(dir.resolve(relNumber + "_init"));
  }

  private static byte[] page(byte[] file, int blk) {
    int from = blk * WalFormat.BLCKSZ;
    return from >= file.length
        ? new byte[WalFormat.BLCKSZ]
        : Arrays.copyOfRange(file, from, from + WalFormat.BLCKSZ);
  }

  private static Map<String, byte[]> relationFiles(Path dir) throws IOException {
    Map<String, byte[]> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path f : s.toList()) {
        if (REL_FILE.matcher(f.getFileName().toString()).matches()) {
          out.put(f.getFileName().toString(), Files.readAllBytes(f));
        }
      }
    }
    return out;
  }

  @Test
  void stockPostgresStartsOnTheBasebackupWithoutRedoAndServesTheData() {
    String expected;
    try (PgCluster original = PgCluster.fromDataDirectory(dir -> copyTree(source.dataDir(), dir))) {
      original.start();
      expected = original.sql("SELECT count(*), sum(v), sum(length(pad)) FROM t").trim();
    }
    try (PgCluster restored = restore(timeline.lastRecordLsn())) {
      restored.start();
      String log = readLog(restored);
      assertThat(log).contains("database system was shut down at").doesNotContain("redo starts");
      assertThat(restored.sql("SELECT count(*), sum(v), sum(length(pad)) FROM t").trim())
          .isEqualTo(expected);
      assertThat(restored.sql("SELECT gid FROM pg_prepared_xacts").trim()).isEqualTo("kept");
      assertThat(restored.sql("SELECT count(*) FROM h WHERE k = 'k77'").trim()).isEqualTo("1");
      assertThat(restored.sql("SELECT count(*) FROM u").trim())
          .as("unlogged tables start empty")
          .isEqualTo("0");
      assertThat(restored.sql("SELECT nextval('s') > 50").trim()).isEqualTo("t");
      // The compute writes new WAL right after the synthesized checkpoint, and keeps working.
      restored.sql("INSERT INTO t VALUES (123456, 1, 'new'); COMMIT PREPARED 'kept'; CHECKPOINT");
      assertThat(restored.sql("SELECT count(*) FROM t WHERE id IN (123456, 99999)").trim())
          .isEqualTo("2");
      restored.run(
          "pg_amcheck",
          List.of(
              "--heapallindexed",
              "--install-missing",
              "-h",
              "127.0.0.1",
              "-p",
              Integer.toString(restored.port()),
              "-U",
              "postgres",
              "-d",
              "postgres"));
    }
  }

  @Test
  void aBasebackupAtAnEarlierLsnShowsTheDataAsOfThen() {
    try (PgCluster past = restore(midpoint)) {
      past.start();
      assertThat(past.sql("SELECT count(*), sum(v) FROM t").trim()).isEqualTo(midpointCount);
      assertThat(past.sql("SELECT count(*) FROM pg_class WHERE relname = 'h'").trim())
          .isEqualTo("0");
    }
  }

  @Test
  void readingAheadInParallelGivesTheSameTarAsReadingOnDemand() throws IOException {
    Scheduler readers = Schedulers.newBoundedElastic(3, 100, "test-read");
    try {
      Map<String, String> onDemand = entryDigests(Basebackup.Reading.sequential());
      Map<String, String> ahead = entryDigests(new Basebackup.Reading(readers, 5));
      assertThat(onDemand.size()).isGreaterThan(100);
      // the same entries in the same order; pg_control and the WAL segment carry the time
      assertThat(List.copyOf(ahead.keySet())).isEqualTo(List.copyOf(onDemand.keySet()));
      onDemand.keySet().removeIf(n -> n.equals("global/pg_control") || n.startsWith("pg_wal/"));
      for (Map.Entry<String, String> e : onDemand.entrySet()) {
        assertThat(ahead.get(e.getKey())).as(e.getKey()).isEqualTo(e.getValue());
      }
    } finally {
      readers.dispose();
    }
  }

  @Test
  void readsAheadOfDemandOnlyAsFarAsTheWindow() {
    Scheduler readers = Schedulers.newBoundedElastic(2, 100, "test-read");
    AtomicInteger read = new AtomicInteger();
    int window = 3;
    try {
      Flux<ByteBuffer> tar =
          Basebackup.stream(
              timeline,
              timeline.lastRecordLsn(),
              pages,
              (page, blk) -> read.incrementAndGet(),
              new Basebackup.Reading(readers, window));
      // the window, one part held by the chunking, and the parts of the chunk held for demand
      int bound = (window + 3) * 32;
      StepVerifier.create(tar, 0)
          .then(() -> awaitAtLeast(read, 1))
          .then(() -> pause(Duration.ofMillis(300)))
          .then(() -> assertThat(read.get()).isLessThanOrEqualTo(bound))
          .thenRequest(1)
          .expectNextCount(1)
          .then(() -> pause(Duration.ofMillis(300)))
          .then(() -> assertThat(read.get()).isLessThanOrEqualTo(bound + 32))
          .thenCancel()
          .verify(Duration.ofMinutes(1));
    } finally {
      readers.dispose();
    }
  }

  @Test
  void aPageThatCannotBeReadFailsTheStream() {
    Scheduler readers = Schedulers.newBoundedElastic(2, 100, "test-read");
    AtomicInteger read = new AtomicInteger();
    try {
      StepVerifier.create(
              Basebackup.stream(
                  timeline,
                  timeline.lastRecordLsn(),
                  pages,
                  (page, blk) -> {
                    if (read.incrementAndGet() == 200) {
                      throw new IllegalStateException("page 200 is broken");
                    }
                  },
                  new Basebackup.Reading(readers, 4)))
          .thenConsumeWhile(b -> true)
          .expectErrorMessage("page 200 is broken")
          .verify(Duration.ofMinutes(1));
    } finally {
      readers.dispose();
    }
  }

  private static void awaitAtLeast(AtomicInteger n, int at) {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (n.get() < at) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("only " + n.get() + " pages read ahead, expected " + at);
      }
      pause(Duration.ofMillis(10));
    }
  }

  /** Real-time pacing: the test is about what happens (nothing) while no demand comes. */
  private static void pause(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Entry name → size and SHA-256 of its content, in tar order. */
  private Map<String, String> entryDigests(Basebackup.Reading reading) throws IOException {
    List<ByteBuffer> chunks =
        Basebackup.stream(
                timeline,
                timeline.lastRecordLsn(),
                pages,
                (page, blk) -> PageChecksum.set(page, blk),
                reading)
            .collectList()
            .block(Duration.ofMinutes(5));
    List<InputStream> parts = new ArrayList<>();
    for (ByteBuffer b : chunks) {
      parts.add(new ByteArrayInputStream(b.array(), b.arrayOffset() + b.position(), b.remaining()));
    }
    Map<String, String> out = new LinkedHashMap<>();
    try (TarArchiveInputStream tar =
        new TarArchiveInputStream(new SequenceInputStream(Collections.enumeration(parts)))) {
      TarArchiveEntry e;
      while ((e = tar.getNextEntry()) != null) {
        byte[] content = tar.readAllBytes();
        out.put(e.getName(), content.length + " " + sha256(content));
      }
    }
    return out;
  }

  private static String sha256(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String readLog(PgCluster c) {
    try {
      return Files.readString(c.logFile());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void copyTree(Path from, Path to) {
    try (Stream<Path> walk = Files.walk(from)) {
      for (Path p : walk.toList()) {
        Path target = to.resolve(from.relativize(p));
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else if (!p.getFileName().toString().equals("postmaster.pid")) {
          Files.copy(p, target);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
