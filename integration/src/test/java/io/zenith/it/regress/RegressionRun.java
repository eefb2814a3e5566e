package io.zenith.it.regress;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.it.support.Basebackups;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One run of PostgreSQL 15's regression suite for every variant of the redo-fidelity test: the
 * {@code parallel_schedule} on a vanilla PostgreSQL 15, and on one lazy compute ({@link
 * LazyRegressCompute}: its relation files behind FUSE, issue 13) whose WAL streams to one
 * in-process pageserver per {@link Variant}, each its synchronous {@code remote_write} standby
 * ({@code FIRST n}: a commit waits for all of them), each with its own settings and its own copy of
 * the same initdb. Then the compute stops cleanly and each pageserver must have ingested up to its
 * shutdown checkpoint. Every pageserver thus ingests exactly the WAL it would have ingested alone,
 * under the timing of a compute that waits for it; the suite runs once instead of once per variant
 * (each run took four to eight minutes on two cores).
 *
 * <p>Made once per test JVM ({@link #get()}), like {@code RedoWorkload}; its pageservers, the
 * s3proxy of the churn variant's remote storage (one for the run, stopped after the pageservers),
 * the stopped compute's files and the work directory go at JVM exit. Thread-safe: made under the
 * class's lock, read-only afterwards (each test class reads its own pageserver).
 */
final class RegressionRun {
  static final TenantId TENANT = TenantId.generate();
  static final TimelineId MAIN = TimelineId.generate();
  private static final int MAX_CONNECTIONS = 2;

  /**
   * Settings of both the compute and the vanilla server (besides initdb's own postgresql.conf,
   * which the compute gets too): what the suite needs (prepared transactions), WAL as a compute
   * writes it for the pageserver, and no fsync.
   */
  static final Map<String, String> SETTINGS =
      Map.of(
          "max_prepared_transactions", "10",
          "fsync", "off",
          "wal_compression", "zstd",
          "wal_log_hints", "on",
          "wal_level", "replica",
          "max_wal_senders", "4",
          "max_replication_slots", "4");

  /** The pageservers' settings, one pageserver each. */
  enum Variant {
    /**
     * Layers frozen every 4 MiB, so that flushed layers are on the path; the history lifecycle at
     * its defaults (a run this short compacts little and collects nothing).
     */
    DEFAULT(
        new PageserverConfig(
            "127.0.0.1:0", "127.0.0.1:0", "test", "4MiB", "10m", "60s", "256MiB", 2, "30s", true)),
    /**
     * Issue 11's churn: layers frozen every MiB, image layers once two delta layers cover a
     * partition, L0 layers merged once there are three, compaction every 2 s and GC every 3 s with
     * a 16 MiB horizon and no PITR window. And issue 12's eviction: remote storage (a real s3proxy
     * on loopback, added by {@link #config(S3Proxy)}) and a local layer budget of 4 MiB, a tenth of
     * the data or less, so compaction and the comparisons download evicted layers (ADR 0027).
     */
    CHURN(
        new PageserverConfig(
                "127.0.0.1:0",
                "127.0.0.1:0",
                "test",
                "1MiB",
                "10m",
                "60s",
                "256MiB",
                2,
                "30s",
                true)
            .withHistory("8MiB", 3, 2, "2s", "16MiB", "0s", "3s")
            .withMaxLocalLayerBytes("4MiB"),
        true);

    /** The settings, without remote storage (its endpoint is known once the run starts). */
    final PageserverConfig config;

    /** Whether the pageserver has remote storage (on the run's s3proxy). */
    final boolean remote;

    Variant(PageserverConfig config) {
      this(config, false);
    }

    Variant(PageserverConfig config, boolean remote) {
      this.config = config;
      this.remote = remote;
    }

    /** The settings with remote storage under this variant's prefix of {@code s3}'s bucket. */
    PageserverConfig config(S3Proxy s3) {
      return remote
          ? config.withRemoteStorage(
              S3Remote.config(s3, "regress-" + name().toLowerCase(java.util.Locale.ROOT)))
          : config;
    }

    /** The compute's standby name (and slot) for this variant's pageserver. */
    String standby() {
      return "pageserver_" + name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  private static CompletableFuture<RegressionRun> run;

  /** Bounds the wait for the run (about six minutes on a quiet two-core machine). */
  private static final Duration MAKE_TIMEOUT = Duration.ofMinutes(45);

  /** What the run printed: it prints on its own thread, so each test class prints it again. */
  private static final StringBuffer notes = new StringBuffer();

  final PgRegressSuite suite;
  final PgRegressSuite.Result vanilla;
  final PgRegressSuite.Result zenith;
  final PgCluster compute;
  final String initdbConf;
  final Lsn importLsn;
  final Map<String, DataDirComparison.Sequence> sequences;
  final Map<Variant, Pageserver> pageservers;
  final Map<Variant, Lsn> finalLsn;

  /** Where the shared files live (basebackups of the tests go here too). */
  final Path data;

  private RegressionRun(
      PgRegressSuite suite,
      PgRegressSuite.Result vanilla,
      PgRegressSuite.Result zenith,
      PgCluster compute,
      String initdbConf,
      Lsn importLsn,
      Map<String, DataDirComparison.Sequence> sequences,
      Map<Variant, Pageserver> pageservers,
      Map<Variant, Lsn> finalLsn,
      Path data) {
    this.suite = suite;
    this.vanilla = vanilla;
    this.zenith = zenith;
    this.compute = compute;
    this.initdbConf = initdbConf;
    this.importLsn = importLsn;
    this.sequences = sequences;
    this.pageservers = pageservers;
    this.finalLsn = finalLsn;
    this.data = data;
  }

  /**
   * Starts making the run on a thread of its own unless it is made or being made; {@code artifacts}
   * receives both runs' outputs. {@link EarlyStart} calls this when the test plan begins, so that
   * the run, which mostly waits for its synchronous standbys (a third of two cores), overlaps the
   * test classes that come before the fidelity tests.
   */
  static synchronized CompletableFuture<RegressionRun> start(Path artifacts) {
    if (run == null) {
      run =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return make(artifacts);
                } catch (IOException e) {
                  throw new UncheckedIOException(e);
                }
              },
              task -> Thread.ofPlatform().daemon().name("regression-run").start(task));
    }
    return run;
  }

  /**
   * The run, waiting for it to be made (see {@link #start}) for at most {@link #MAKE_TIMEOUT}; its
   * failure is thrown here.
   */
  static RegressionRun get(Path artifacts) throws IOException {
    try {
      return start(artifacts).get(MAKE_TIMEOUT.toMinutes(), TimeUnit.MINUTES);
    } catch (ExecutionException e) {
      switch (e.getCause()) {
        case UncheckedIOException io -> throw io.getCause();
        case RuntimeException r -> throw r;
        case Error r -> throw r;
        default -> throw new IllegalStateException(e.getCause());
      }
    } catch (TimeoutException e) {
      throw new AssertionError("the regression run was not made within " + MAKE_TIMEOUT, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted while waiting for the regression run", e);
    }
  }

  private static void say(String format, Object... args) {
    String line = String.format(format, args);
    System.out.print(line);
    notes.append(line);
  }

  /** The lines the run printed so far. */
  static String notes() {
    return notes.toString();
  }

  private static RegressionRun make(Path artifacts) throws IOException {
    PgRegressSuite suite = PgRegressSuite.locate();
    say(
        "regression suite of PostgreSQL %s (binaries %s)%n",
        suite.sourceVersion(), suite.binaryVersion());
    String schedule = "parallel_schedule";
    PgDistribution pg = PgDistribution.detect();
    // pg_regress runs as PostgreSQL's OS user, which cannot enter JUnit's private temp directory
    Path work = Files.createTempDirectory("zenith-regress-");
    pg.createOwnedDirectory(work);
    Path data = Files.createTempDirectory("zenith-regress-ps-");
    Map<Variant, Pageserver> pageservers = new EnumMap<>(Variant.class);
    List<AutoCloseable> atExit = new java.util.concurrent.CopyOnWriteArrayList<>();
    // s3proxy (a JVM) starts while the vanilla suite runs; closed last, after the pageservers
    CompletableFuture<S3Proxy> s3Start = CompletableFuture.supplyAsync(S3Proxy::start);
    atExit.add(
        () -> {
          if (s3Start.isDone() && !s3Start.isCompletedExceptionally()) {
            s3Start.join().close(); // (one still starting is killed by its own shutdown hook)
          }
        });
    Runtime.getRuntime()
        .addShutdownHook(
            Thread.ofPlatform()
                .unstarted(
                    () -> {
                      for (AutoCloseable c : atExit) {
                        try {
                          c.close();
                        } catch (Exception e) {
                          System.err.println("regression run: cleanup failed: " + e);
                        }
                      }
                      PgCluster.deleteTree(work);
                      PgCluster.deleteTree(data);
                    }));

    PgRegressSuite.Result vanilla;
    try (PgCluster plain = PgCluster.initdb("--data-checksums")) {
      plain.configure(SETTINGS).start();
      vanilla =
          suite.run(
              pg,
              plain.port(),
              schedule,
              MAX_CONNECTIONS,
              work.resolve("vanilla"),
              artifacts.resolve("vanilla"));
    }
    say(
        "vanilla: %d tests in %d s, failed: %s%n",
        vanilla.outcomes().size(), vanilla.took().toSeconds(), vanilla.failed());

    Lsn importLsn = null;
    String initdbConf;
    try (PgCluster initdb = PgCluster.initdb("--data-checksums")) {
      for (Variant v : Variant.values()) {
        try (LayerStore store = LayerStore.open(psDir(data, v), LayerStoreConfig.DEFAULT)) {
          store.createTenant(TENANT);
          Lsn lsn = DatadirImport.run(store, TENANT, MAIN, initdb.dataDir()).lsn();
          assertThat(importLsn == null || lsn.equals(importLsn))
              .as("the same initdb imports at the same LSN")
              .isTrue();
          importLsn = lsn;
        }
      }
      initdbConf = Files.readString(initdb.dataDir().resolve("postgresql.conf"));
    }
    S3Proxy s3 = s3Start.join();
    for (Variant v : Variant.values()) {
      Pageserver ps = Pageserver.start(psDir(data, v), v.config(s3).validate());
      atExit.add(0, ps);
      pageservers.put(v, ps);
      if (v.remote) {
        say("pageserver %s: remote storage on s3proxy at %s%n", v.standby(), s3.endpoint());
      }
    }

    // A lazy compute (issue 13's fidelity acceptance): its relation files are the pageserver's
    // pages at the import LSN under an overlay of what it writes. It reads at that LSN, not at the
    // latest one as a primary of `pg start` does, so that every page it did not write is the
    // initdb's, as on a full compute: the comparison then checks every block of every file
    // against an independent oracle, not the pageserver against itself.
    LazyRegressCompute lazy =
        LazyRegressCompute.mount(
            pageservers.get(Variant.DEFAULT), importLsn, false, data, initdbConf);
    atExit.add(0, lazy);
    PgCluster compute = lazy.cluster();
    String standbys =
        String.join(", ", java.util.Arrays.stream(Variant.values()).map(Variant::standby).toList());
    compute
        .configure(SETTINGS)
        .configure(
            Map.of(
                "synchronous_standby_names",
                "FIRST " + Variant.values().length + " (" + standbys + ")",
                "synchronous_commit",
                "remote_write",
                // all of its WAL stays for pg_waldump (VmImageHoles)
                "wal_keep_size",
                "4GB"))
        .start();
    for (Variant v : Variant.values()) {
      pageservers
          .get(v)
          .startWalReceiver(
              TENANT,
              MAIN,
              ApiModel.WalSource.fromCompute(
                  "127.0.0.1", compute.port(), "postgres", v.standby(), v.standby()));
    }
    PgRegressSuite.Result zenith =
        suite.run(
            pg,
            compute.port(),
            schedule,
            MAX_CONNECTIONS,
            work.resolve("zenith"),
            artifacts.resolve("zenith"));
    say(
        "zenith: %d tests in %d s, failed: %s%n",
        zenith.outcomes().size(), zenith.took().toSeconds(), zenith.failed());

    Map<String, DataDirComparison.Sequence> sequences = sequencesOf(compute);
    // A clean stop: the walsenders send everything up to the shutdown checkpoint and wait until
    // the pageservers report it flushed.
    compute.stop();
    Lsn checkpoint = latestCheckpoint(compute);
    long materializing = System.nanoTime();
    lazy.materialize();
    say(
        "lazy compute's base/ and global/ read through its mounts in %d s%n",
        Duration.ofNanos(System.nanoTime() - materializing).toSeconds());
    Map<Variant, Lsn> finalLsn = new EnumMap<>(Variant.class);
    for (Variant v : Variant.values()) {
      Pageserver ps = pageservers.get(v);
      Timeline t = ps.store().timeline(TENANT, MAIN);
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (!t.position().prev().equals(checkpoint) && System.nanoTime() < deadline) {
        sleep(100);
      }
      assertThat(t.position().prev())
          .as(
              "the last record pageserver %s ingested is the compute's shutdown checkpoint",
              v.standby())
          .isEqualTo(checkpoint);
      ps.stopWalReceiver(TENANT, MAIN);
      finalLsn.put(v, t.lastRecordLsn());
    }
    say("compute stopped; shutdown checkpoint at %s, final LSN %s%n", checkpoint, finalLsn);
    return new RegressionRun(
        suite,
        vanilla,
        zenith,
        compute,
        initdbConf,
        importLsn,
        sequences,
        Map.copyOf(pageservers),
        Map.copyOf(finalLsn),
        data);
  }

  private static Path psDir(Path data, Variant v) {
    return data.resolve("ps-" + v.name().toLowerCase(java.util.Locale.ROOT));
  }

  /**
   * A data directory from {@code ps}'s basebackup at {@code lsn} (latest if null), with the
   * initdb's postgresql.conf (locale, text search and date settings the suite expects).
   */
  static PgCluster fromBasebackup(Pageserver ps, String lsn, Path data, String initdbConf) {
    PgCluster c = Basebackups.fetch(ps.pgPort(), TENANT, MAIN, lsn, data);
    try {
      Files.writeString(c.dataDir().resolve("postgresql.conf"), initdbConf);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return c;
  }

  /** Every sequence of every database, by file: {@code base/<db oid>/<relfilenode>}. */
  private static Map<String, DataDirComparison.Sequence> sequencesOf(PgCluster c) {
    Map<String, DataDirComparison.Sequence> out = new LinkedHashMap<>();
    for (String db :
        c.sql("SELECT oid || ' ' || datname FROM pg_database WHERE datallowconn").split("\n")) {
      if (db.isBlank()) {
        continue;
      }
      String[] oidName = db.trim().split(" ", 2);
      String rows =
          c.sql(
              oidName[1],
              "SELECT pg_relation_filenode(seqrelid), seqincrement, seqcycle FROM pg_sequence");
      for (String row : rows.split("\n")) {
        if (row.isBlank()) {
          continue;
        }
        String[] f = row.trim().split("\\|");
        out.put(
            "base/" + oidName[0] + "/" + f[0],
            new DataDirComparison.Sequence(Long.parseLong(f[1]), f[2].equals("t")));
      }
    }
    return out;
  }

  private static final Pattern LATEST_CHECKPOINT =
      Pattern.compile("Latest checkpoint location:\\s+([0-9A-F]+/[0-9A-F]+)");

  private static Lsn latestCheckpoint(PgCluster c) {
    String out = c.run("pg_controldata", List.of("-D", c.dataDir().toString()));
    Matcher m = LATEST_CHECKPOINT.matcher(out);
    assertThat(m.find()).as("pg_controldata output:%n%s", out).isTrue();
    assertThat(out).contains("Database cluster state:               shut down");
    return Lsn.parse(m.group(1));
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
