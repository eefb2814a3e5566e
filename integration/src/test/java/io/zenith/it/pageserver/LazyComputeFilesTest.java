package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.regress.DataDirComparison;
import io.zenith.it.support.Basebackups;
import io.zenith.it.support.ZenithEnv;
import io.zenith.layer.Timeline;
import io.zenith.page.fuse.LazyFsConfig;
import io.zenith.page.fuse.LazyMount;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The compute agent's lazy filesystem (ADR 0018) against a real pageserver with a pgbench database
 * written by a real compute: a slim basebackup with {@code base/} and {@code global/} mounted over
 * pagestream at the LSN the compute stopped at has the compute's own relation files (DESIGN §6
 * masks); writes, extensions, renames and unlinks go to the overlay; unmounting leaves no mount; an
 * unknown timeline is EIO; and stock PostgreSQL runs on the mounts (pgbench, its balances
 * consistent, the same sum as the original compute, across a restart).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LazyComputeFilesTest {
  @TempDir static Path data;
  private ZenithEnv env;
  private Pageserver ps;
  private PgCluster compute;
  private int dbOid;
  private int accounts;
  private String branches;
  private String tellers;
  private String sum;
  private Lsn lsn;
  private Path slim;

  @BeforeAll
  void start() throws IOException {
    env =
        ZenithEnv.start(
            data,
            PageserverHarness.config("16MiB", "3s", 2)
                .withHistory("1MiB", 3, 2, "1h", "1MiB", "0s", "0s"));
    ps = env.pageserver();
    compute = env.primary(env.main(), Map.of("autovacuum", "off"));
    compute.run("pgbench", pgbench(compute, "-i", "-s", "1"));
    compute.run("pgbench", pgbench(compute, "-c", "2", "-t", "200", "-n"));
    dbOid =
        Integer.parseInt(
            compute.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'").trim());
    accounts =
        Integer.parseInt(compute.sql("SELECT pg_relation_filenode('pgbench_accounts')").trim());
    branches = compute.sql("SELECT pg_relation_filenode('pgbench_branches')").trim();
    tellers = compute.sql("SELECT pg_relation_filenode('pgbench_tellers')").trim();
    sum = compute.sql("SELECT sum(abalance) FROM pgbench_accounts").trim();
    compute.sql("CHECKPOINT");
    env.stop(compute, env.main()); // clean shutdown: its data files are final, its WAL ingested
    lsn = ps.store().timeline(env.tenant(), env.main()).lastRecordLsn();
    slim = data.resolve("slim.tar");
    PageserverHarness.Run r =
        PageserverHarness.psql(
            ps, "basebackup " + env.tenant() + " " + env.main() + " " + lsn + " --slim", slim);
    assertThat(r.exit()).as(r.output()).isZero();
  }

  @AfterAll
  void stop() {
    if (compute != null) {
      compute.close();
    }
    if (env != null) {
      env.close();
    }
  }

  private static List<String> pgbench(PgCluster c, String... args) {
    List<String> out = new ArrayList<>(List.of(args));
    out.addAll(
        List.of("-h", "127.0.0.1", "-p", Integer.toString(c.port()), "-U", "postgres", "postgres"));
    return out;
  }

  private LazyFsConfig config(TimelineId timeline, int uid, int gid) {
    return config(timeline, uid, gid, true);
  }

  private LazyFsConfig config(TimelineId timeline, int uid, int gid, boolean primary) {
    return config(timeline, uid, gid, primary, ps.pgPort());
  }

  private LazyFsConfig config(TimelineId timeline, int uid, int gid, boolean primary, int port) {
    return new LazyFsConfig(
        "127.0.0.1",
        port,
        "postgres",
        null,
        env.tenant(),
        timeline,
        lsn,
        primary,
        Duration.ofSeconds(30),
        4,
        4,
        uid,
        gid);
  }

  /**
   * A data directory's base/ and global/ mounted lazily over what the slim basebackup put there.
   */
  private record Mounted(LazyMount base, LazyMount global) implements AutoCloseable {
    @Override
    public void close() throws IOException {
      try {
        base.close();
      } finally {
        global.close();
      }
    }
  }

  private Mounted mount(Path dataDir, TimelineId timeline, String name) throws IOException {
    return mount(dataDir, timeline, name, true);
  }

  private Mounted mount(Path dataDir, TimelineId timeline, String name, boolean primary)
      throws IOException {
    return mount(dataDir, timeline, name, primary, ps.pgPort());
  }

  private Mounted mount(Path dataDir, TimelineId timeline, String name, boolean primary, int port)
      throws IOException {
    // owned by PostgreSQL's OS user, as the compute's data directory
    int uid = (Integer) Files.getAttribute(compute.dataDir(), "unix:uid");
    int gid = (Integer) Files.getAttribute(compute.dataDir(), "unix:gid");
    Path seeds = Files.createDirectories(data.resolve(name + "-seed"));
    List<LazyMount> mounts = new ArrayList<>();
    try {
      for (String dir : List.of("base", "global")) {
        Files.move(dataDir.resolve(dir), seeds.resolve(dir));
        Files.createDirectory(dataDir.resolve(dir));
        mounts.add(
            LazyMount.mount(
                config(timeline, uid, gid, primary, port),
                dir.equals("base") ? LazyMount.Root.BASE : LazyMount.Root.GLOBAL,
                seeds.resolve(dir),
                data.resolve(name + "-overlay-" + dir),
                dataDir.resolve(dir)));
      }
    } catch (IOException | RuntimeException e) {
      for (LazyMount m : mounts) {
        m.close();
      }
      throw e;
    }
    return new Mounted(mounts.get(0), mounts.get(1));
  }

  @Test
  @Order(1)
  void everyRelationFileReadThroughTheMountEqualsTheComputesOwnAndWritesGoToTheOverlay()
      throws Exception {
    Path dir = Files.createDirectories(data.resolve("rebuilt"));
    Basebackups.extract(slim, dir);
    Mounted m = mount(dir, env.main(), "rebuilt");
    try {
      long started = System.nanoTime();
      DataDirComparison cmp =
          DataDirComparison.compare(
              compute.dataDir(), dir, new DataDirComparison.Facts(Map.of(), Set.of()));
      System.out.printf(
          "%d pages compared through the mount (read cold) in %d ms%n",
          cmp.pagesCompared, Duration.ofNanos(System.nanoTime() - started).toMillis());
      assertThat(cmp.mismatches).isEmpty();
      assertThat(cmp.pagesCompared).isGreaterThan(1600);
      Path db = dir.resolve("base/" + dbOid);
      Path own = compute.dataDir().resolve("base/" + dbOid);
      coldRead(dir.resolve("global"), db);
      for (String file : List.of("PG_VERSION", "pg_filenode.map")) {
        assertThat(Files.readAllBytes(db.resolve(file)))
            .isEqualTo(Files.readAllBytes(own.resolve(file)));
      }
      assertThat(Files.readAllBytes(dir.resolve("global/pg_filenode.map")))
          .isEqualTo(Files.readAllBytes(compute.dataDir().resolve("global/pg_filenode.map")));
      // the compute's main forks are all listed (and with their sizes, by the comparison)
      assertThat(names(db)).containsAll(mainForks(own));
      assertThat(Files.getAttribute(db.resolve(Integer.toString(accounts)), "unix:uid"))
          .isEqualTo(Files.getAttribute(compute.dataDir(), "unix:uid"));

      // Writes: an extension by one page; the pages before it stay the pageserver's.
      Path acc = db.resolve(Integer.toString(accounts));
      long size = Files.size(acc);
      byte[] first = readAt(acc, 0);
      byte[] last = readAt(acc, size - 8192);
      byte[] page = new byte[8192];
      Arrays.fill(page, (byte) 0x5A);
      try (FileChannel c = FileChannel.open(acc, StandardOpenOption.WRITE)) {
        c.write(ByteBuffer.wrap(page), size);
        c.force(false);
      }
      assertThat(Files.size(acc)).isEqualTo(size + 8192);
      assertThat(Arrays.equals(readAt(acc, size), page)).isTrue();
      assertThat(Arrays.equals(readAt(acc, size - 8192), last)).isTrue();
      // a truncation to one page, then an unlink and a rename
      try (FileChannel c = FileChannel.open(acc, StandardOpenOption.WRITE)) {
        c.truncate(8192);
      }
      assertThat(Files.size(acc)).isEqualTo(8192);
      assertThat(Arrays.equals(readAt(acc, 0), first)).isTrue();
      Files.move(acc, db.resolve("4000000000"));
      assertThat(names(db)).contains("4000000000").doesNotContain(Integer.toString(accounts));
      Files.delete(db.resolve("4000000000"));
      assertThat(names(db)).doesNotContain("4000000000");
    } finally {
      m.close();
    }
    assertThat(mounted(dir.resolve("base"))).isFalse();
    assertThat(mounted(dir.resolve("global"))).isFalse();
    assertThat(names(data.resolve("rebuilt-overlay-base"))).isEmpty();
  }

  @Test
  @Order(2)
  void anUnknownTimelineIsEioOnTheFirstListingAndTheMountGoesAway() throws Exception {
    Path mnt = Files.createDirectories(data.resolve("unknown-mnt"));
    Path seed = Files.createDirectories(data.resolve("unknown-seed/" + dbOid));
    Files.writeString(seed.resolve("PG_VERSION"), "15\n");
    try (LazyMount m =
        LazyMount.mount(
            config(TimelineId.generate(), 0, 0),
            LazyMount.Root.BASE,
            seed.getParent(),
            data.resolve("unknown-overlay"),
            mnt)) {
      assertThat(m.mountPoint()).isEqualTo(mnt);
      assertThatThrownBy(() -> names(mnt.resolve(Integer.toString(dbOid))))
          .isInstanceOfAny(IOException.class, UncheckedIOException.class)
          .hasMessageContaining("Input/output error");
      assertThat(Files.readString(mnt.resolve(dbOid + "/PG_VERSION"))).isEqualTo("15\n");
    }
    assertThat(mounted(mnt)).isFalse();
  }

  @Test
  @Order(3)
  void stockPostgresqlRunsPgbenchOnTheMountsWithTheOriginalsData() throws Exception {
    PgCluster lazy =
        PgCluster.fromDataDirectory(dir -> Basebackups.extract(slim, dir)).writeMinimalConfig();
    Mounted m = null;
    try {
      m = mount(lazy.dataDir(), env.main(), "lazy");
      lazy.configure(Map.of("autovacuum", "off")).start();
      assertThat(lazy.sql("SELECT sum(abalance) FROM pgbench_accounts").trim()).isEqualTo(sum);
      lazy.run("pgbench", pgbench(lazy, "-c", "2", "-t", "300", "-n"));
      assertBalancesConsistent(lazy);
      lazy.sql("CHECKPOINT");
      lazy.stop();
      lazy.start();
      assertBalancesConsistent(lazy);
      assertThat(lazy.sql("SELECT count(*) FROM pgbench_history").trim()).isEqualTo("1000");
      lazy.stop();
    } finally {
      try {
        if (m != null) {
          lazy.stop(); // PostgreSQL first, then its mounts, then its directory
          m.close();
        }
      } finally {
        lazy.close();
      }
    }
  }

  @Test
  @Order(4)
  void readsFailWithEioWhileThePageserverIsGoneAndWorkAgainWhenItIsBack() throws Exception {
    Path dir = Files.createDirectories(data.resolve("gone"));
    Basebackups.extract(slim, dir);
    int uid = (Integer) Files.getAttribute(compute.dataDir(), "unix:uid");
    Path seeds = Files.createDirectories(data.resolve("gone-seed"));
    Files.move(dir.resolve("base"), seeds.resolve("base"));
    Files.createDirectory(dir.resolve("base"));
    try (Proxy proxy = new Proxy(ps.pgPort())) {
      LazyFsConfig c = config(env.main(), uid, uid);
      LazyFsConfig viaProxy =
          new LazyFsConfig(
              c.host(),
              proxy.port(),
              c.user(),
              c.password(),
              c.tenant(),
              c.timeline(),
              c.lsn(),
              c.primary(),
              Duration.ofSeconds(5),
              c.connections(),
              c.threads(),
              c.uid(),
              c.gid());
      try (LazyMount m =
          LazyMount.mount(
              viaProxy,
              LazyMount.Root.BASE,
              seeds.resolve("base"),
              data.resolve("gone-overlay"),
              dir.resolve("base"))) {
        Path db = dir.resolve("base/" + dbOid);
        assertThat(Arrays.equals(readAt(db.resolve(Integer.toString(accounts)), 0), new byte[8192]))
            .isFalse();
        proxy.kill(); // the pageserver's connections reset, its port refuses
        long started = System.nanoTime();
        assertThatThrownBy(() -> readAt(db.resolve(branches), 0))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("Input/output error");
        assertThat(Duration.ofNanos(System.nanoTime() - started))
            .isLessThan(Duration.ofSeconds(10));
        proxy.revive();
        // the next read opens a new connection
        assertThat(Files.size(db.resolve(tellers))).isEqualTo(8192);
        assertThat(Arrays.equals(readAt(db.resolve(tellers), 0), new byte[8192])).isFalse();
        assertThat(m.mountPoint()).isEqualTo(dir.resolve("base"));
      }
    }
    assertThat(mounted(dir.resolve("base"))).isFalse();
  }

  /**
   * GC and long-running lazy computes (ADR 0021, "GC and lazy computes"): a read-only mount at the
   * LSN holds it (GC's cutoff stops there while its pagestream connection is open, and it reads the
   * compute's files), and once it is gone the cutoff passes the LSN and a primary PostgreSQL
   * started on mounts at that LSN still reads a table it had not read yet (before the fix: EIO).
   * The WAL that moves the cutoff comes from a second compute on the branch that only appends to
   * pgbench_history, which the lazy PostgreSQL never reads: the primary's premise (nothing it did
   * not write changes) holds for everything it reads. Last: it moves the GC cutoff past the LSN.
   */
  @Test
  @Order(5)
  void gcPastTheStartLsnLeavesAPrimaryReadingWhileAReadOnlyMountHoldsItsLsn() throws Exception {
    PgCluster lazy =
        PgCluster.fromDataDirectory(dir -> Basebackups.extract(slim, dir)).writeMinimalConfig();
    PgCluster readOnlyPg =
        PgCluster.fromDataDirectory(dir -> Basebackups.extract(slim, dir)).writeMinimalConfig();
    Mounted primary = null;
    Mounted readOnly = null;
    PgCluster writer = null;
    try (Proxy proxy = new Proxy(ps.pgPort())) {
      primary = mount(lazy.dataDir(), env.main(), "gc-primary", true);
      readOnly = mount(readOnlyPg.dataDir(), env.main(), "gc-ro", false, proxy.port());
      lazy.configure(Map.of("autovacuum", "off")).start();
      assertThat(lazy.sql("SELECT count(*) FROM pgbench_branches").trim()).isEqualTo("1");
      // the read-only mount's first listing opens a pagestream connection that holds the LSN
      Path roAccounts = readOnlyPg.dataDir().resolve("base/" + dbOid + "/" + accounts);
      assertThat(Files.size(roAccounts)).isPositive();

      writer = env.primary(env.main(), Map.of("autovacuum", "off"));
      writer.sql(
          "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now(), 'gc'"
              + " FROM generate_series(1, 100000)");
      writer.sql("CHECKPOINT");
      Lsn written = Lsn.parse(writer.sql("SELECT pg_current_wal_lsn()").trim());
      env.stop(writer, env.main());
      assertThat(written).isGreaterThan(lsn.plus(4 << 20));
      Timeline t = ps.store().timeline(env.tenant(), env.main());
      awaitTrue(() -> !t.lastRecordLsn().isBefore(written), "the pageserver ingests the writes");
      ps.checkpoint(env.tenant(), env.main());

      // GC stops at the read-only mount's LSN
      assertThat(Lsn.parse(ps.gc(env.tenant(), env.main()).cutoff())).isEqualTo(lsn);
      // The read-only mount's connections reset, as in a pageserver restart: its hold connects
      // again at its next probe (every 5 s), and GC still stops at the LSN; PostgreSQL on the mount
      // reads the compute's balances (a dead pooled connection is replaced, not an EIO).
      int before = proxy.accepted.get();
      proxy.resetConnections();
      awaitTrue(() -> proxy.accepted.get() > before, "the hold connects again");
      Thread.sleep(2000); // from its TCP connection to its pagestream command
      assertThat(Lsn.parse(ps.gc(env.tenant(), env.main()).cutoff())).isEqualTo(lsn);
      readOnlyPg.configure(Map.of("autovacuum", "off")).start();
      assertThat(readOnlyPg.sql("SELECT sum(abalance) FROM pgbench_accounts").trim())
          .isEqualTo(sum);
      readOnlyPg.stop();
      readOnly.close();
      readOnly = null;

      // without it, GC passes the LSN (once the server has seen the connections go)
      awaitTrue(
          () -> Lsn.parse(ps.gc(env.tenant(), env.main()).cutoff()).isAfter(lsn),
          "GC passes the start LSN once no mount holds it");
      // the primary reads what it never read before at the latest LSN: GC removed nothing of it
      assertThat(lazy.sql("SELECT sum(abalance) FROM pgbench_accounts").trim()).isEqualTo(sum);
      assertThat(lazy.sql("SELECT sum(tbalance) FROM pgbench_tellers").trim()).isEqualTo(sum);
      lazy.stop();
    } finally {
      try {
        if (writer != null) {
          writer.close();
        }
        if (readOnly != null) {
          readOnlyPg.stop();
          readOnly.close();
        }
        if (primary != null) {
          lazy.stop(); // PostgreSQL first, then its mounts, then its directory
          primary.close();
        }
      } finally {
        lazy.close();
        readOnlyPg.close();
      }
    }
  }

  private static void awaitTrue(java.util.function.BooleanSupplier condition, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (!condition.getAsBoolean()) {
      assertThat(System.nanoTime()).as("%s within 30 s", what).isLessThan(deadline);
      Thread.sleep(100);
    }
  }

  /** A TCP forwarder to the pageserver that can be killed (connections reset) and revived. */
  private static final class Proxy implements AutoCloseable {
    private final int target;
    private final List<java.net.Socket> sockets =
        java.util.Collections.synchronizedList(new ArrayList<>());
    private java.net.ServerSocket server;
    final java.util.concurrent.atomic.AtomicInteger accepted =
        new java.util.concurrent.atomic.AtomicInteger();

    Proxy(int target) throws IOException {
      this.target = target;
      server = new java.net.ServerSocket(0);
      accept(server);
    }

    int port() {
      return server.getLocalPort();
    }

    private void accept(java.net.ServerSocket s) {
      Thread.ofPlatform()
          .daemon()
          .start(
              () -> {
                try {
                  while (true) {
                    java.net.Socket client = s.accept();
                    accepted.incrementAndGet();
                    java.net.Socket upstream = new java.net.Socket("127.0.0.1", target);
                    sockets.add(client);
                    sockets.add(upstream);
                    pump(client, upstream);
                    pump(upstream, client);
                  }
                } catch (IOException e) {
                  // closed: killed
                }
              });
    }

    private static void pump(java.net.Socket from, java.net.Socket to) {
      Thread.ofPlatform()
          .daemon()
          .start(
              () -> {
                try {
                  from.getInputStream().transferTo(to.getOutputStream());
                } catch (IOException e) {
                  // one side went away
                } finally {
                  try {
                    from.close();
                    to.close();
                  } catch (IOException e) {
                    // closing anyway
                  }
                }
              });
    }

    /**
     * Resets every connection (RST) and goes on accepting new ones on the same port: a pageserver
     * that restarted at once (no rebinding of the port, which another socket may take meanwhile).
     */
    void resetConnections() throws IOException {
      synchronized (sockets) {
        for (java.net.Socket s : sockets) {
          if (!s.isClosed()) {
            s.setSoLinger(true, 0);
            s.close();
          }
        }
        sockets.clear();
      }
    }

    void kill() throws IOException {
      int port = port();
      server.close();
      synchronized (sockets) {
        for (java.net.Socket s : sockets) {
          if (!s.isClosed()) {
            s.setSoLinger(true, 0); // RST, as a killed process's sockets
            s.close();
          }
        }
        sockets.clear();
      }
      server = null;
      revivePort = port;
    }

    private int revivePort;

    void revive() throws IOException {
      java.net.ServerSocket s = new java.net.ServerSocket();
      s.setReuseAddress(true);
      s.bind(new java.net.InetSocketAddress("127.0.0.1", revivePort));
      server = s;
      accept(s);
    }

    @Override
    public void close() throws IOException {
      if (server != null) {
        kill();
      }
    }
  }

  /** pgbench's invariant: every balance change is in the history and in all three tables. */
  private static void assertBalancesConsistent(PgCluster c) {
    String sums =
        c.sql(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' '"
                + " || (SELECT sum(bbalance) FROM pgbench_branches) || ' '"
                + " || (SELECT sum(tbalance) FROM pgbench_tellers) || ' '"
                + " || (SELECT sum(delta) FROM pgbench_history)");
    assertThat(Arrays.stream(sums.trim().split(" ")).distinct().count()).as(sums).isEqualTo(1);
  }

  /**
   * Reads the relation files the comparison did not read (fsm forks) and prints how fast: not
   * timed, a note for benchmarks (the files read before were read cold through the mount).
   */
  private static void coldRead(Path... dirs) throws IOException {
    long bytes = 0;
    long started = System.nanoTime();
    for (Path d : dirs) {
      for (String n : names(d)) {
        if (n.endsWith("_fsm")) {
          bytes += Files.readAllBytes(d.resolve(n)).length;
        }
      }
    }
    long ns = System.nanoTime() - started;
    System.out.printf(
        "cold read of fsm forks through the mount: %d bytes in %d ms%n", bytes, ns / 1_000_000);
  }

  private static byte[] readAt(Path f, long pos) throws IOException {
    try (FileChannel c = FileChannel.open(f)) {
      ByteBuffer b = ByteBuffer.allocate(8192);
      while (b.hasRemaining() && c.read(b, pos + b.position()) >= 0) {}
      return b.array();
    }
  }

  private static List<String> mainForks(Path dir) throws IOException {
    return names(dir).stream().filter(n -> n.matches("\\d+")).toList();
  }

  private static List<String> names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  private static boolean mounted(Path mountPoint) throws IOException {
    return Files.readAllLines(Path.of("/proc/self/mountinfo")).stream()
        .anyMatch(l -> l.contains(" " + mountPoint.toAbsolutePath() + " "));
  }
}
