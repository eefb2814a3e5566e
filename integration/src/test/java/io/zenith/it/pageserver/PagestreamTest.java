package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.it.regress.DataDirComparison;
import io.zenith.it.support.ZenithEnv;
import io.zenith.layer.Timeline;
import io.zenith.page.stream.PagestreamClient;
import io.zenith.page.stream.PagestreamException;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.page.stream.PagestreamRequest.DbSize;
import io.zenith.page.stream.PagestreamRequest.Exists;
import io.zenith.page.stream.PagestreamRequest.GetPage;
import io.zenith.page.stream.PagestreamRequest.GetPages;
import io.zenith.page.stream.PagestreamRequest.ListRelations;
import io.zenith.page.stream.PagestreamRequest.Nblocks;
import io.zenith.page.stream.PagestreamRequest.SlruSegment;
import io.zenith.page.stream.PagestreamResponse;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
 * The pagestream endpoint against a real compute: a pgbench database written through a compute that
 * streamed its WAL to the pageserver, then stopped cleanly; every relation file and SLRU segment
 * rebuilt through pagestream alone equals the compute's own files (DESIGN §6 masks), sizes and
 * listings match the files, batches equal single reads, pipelined requests are answered in order,
 * and bad input gets its SQLSTATE while other sessions are served.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PagestreamTest {
  private static final Duration T = Duration.ofSeconds(60);
  private static final Lsn LATEST = PagestreamRequest.LATEST;
  private static final Pattern REL_FILE = Pattern.compile("(\\d+)(?:_(fsm|vm|init))?");

  @TempDir static Path data;
  private ZenithEnv env;
  private Pageserver ps;
  private PgCluster compute;
  private int dbOid;
  private int accounts;
  private long nextId;

  @BeforeAll
  void start() throws IOException {
    env =
        ZenithEnv.start(
            data,
            PageserverHarness.config("16MiB", "3s", 2)
                .withHistory("1MiB", 3, 2, "1h", "1MiB", "0s", "0s"));
    ps = env.pageserver();
    compute = env.primary(env.main(), Map.of("autovacuum", "off"));
    compute.run(
        "pgbench",
        List.of(
            "-i",
            "-s",
            "1",
            "-h",
            "127.0.0.1",
            "-p",
            Integer.toString(compute.port()),
            "-U",
            "postgres",
            "postgres"));
    dbOid =
        Integer.parseInt(
            compute.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'").trim());
    accounts =
        Integer.parseInt(compute.sql("SELECT pg_relation_filenode('pgbench_accounts')").trim());
    compute.sql("CHECKPOINT");
    env.stop(compute, env.main()); // clean shutdown: its data files are final, its WAL ingested
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

  private PagestreamClient connect() throws IOException {
    return connect(env.tenant(), env.main());
  }

  private PagestreamClient connect(TenantId tenant, TimelineId timeline) throws IOException {
    return PagestreamClient.connect(
        "127.0.0.1", ps.pgPort(), "postgres", null, tenant, timeline, T);
  }

  private RelTag rel(int relNumber) {
    return new RelTag(RelTag.DEFAULT_TABLESPACE, dbOid, relNumber);
  }

  @Test
  @Order(1)
  void everyRelationFileAndSlruSegmentRebuiltThroughPagestreamEqualsTheComputesOwn()
      throws Exception {
    Path rebuilt = Files.createTempDirectory(data, "rebuilt");
    Path own = compute.dataDir();
    int pages = 0;
    try (PagestreamClient c = connect()) {
      List<Path> dirs = new ArrayList<>();
      dirs.add(own.resolve("global"));
      try (Stream<Path> s = Files.list(own.resolve("base"))) {
        s.filter(p -> p.getFileName().toString().matches("\\d+"))
            .forEach(dirs::add); // not pgsql_tmp
      }
      for (Path dir : dirs) {
        boolean global = dir.getFileName().toString().equals("global");
        int spc = global ? RelTag.GLOBAL_TABLESPACE : RelTag.DEFAULT_TABLESPACE;
        int db = global ? 0 : Integer.parseInt(dir.getFileName().toString());
        Path out = rebuilt.resolve(own.relativize(dir));
        Files.createDirectories(out);
        var listed =
            (PagestreamResponse.Relations)
                c.call(new ListRelations(id(), LATEST, Lsn.INVALID, spc, db));
        // The main and init forks the compute has are exactly those listed, with its sizes (the
        // free-space map is not WAL-logged; visibility-map forks may be extended without WAL).
        Map<String, Integer> listedFiles = new HashMap<>();
        for (PagestreamResponse.Relation r : listed.relations()) {
          listedFiles.put(fileName(r.relNumber(), r.fork()), r.blocks());
        }
        Map<String, Long> ownFiles = relationFiles(dir);
        for (var e : ownFiles.entrySet()) {
          if (e.getKey().contains("_")) {
            continue;
          }
          assertThat(listedFiles).as("%s/%s", dir, e.getKey()).containsKey(e.getKey());
          assertThat(listedFiles.get(e.getKey()) * 8192L)
              .as("%s/%s", dir, e.getKey())
              .isEqualTo(e.getValue());
        }
        assertThat(ownFiles.keySet())
            .containsAll(listedFiles.keySet().stream().filter(n -> !n.endsWith("_fsm")).toList());
        long total = 0;
        for (PagestreamResponse.Relation r : listed.relations()) {
          total += r.blocks() * 8192L;
          RelTag tag = new RelTag(spc, db, r.relNumber());
          assertThat(c.call(new Nblocks(id(), LATEST, Lsn.INVALID, tag, r.fork())))
              .isEqualTo(new PagestreamResponse.Nblocks(nextId - 1, r.blocks()));
          if (r.fork() == ForkNumber.FSM) {
            continue;
          }
          pages += r.blocks();
          writeFork(c, tag, r.fork(), r.blocks(), out.resolve(fileName(r.relNumber(), r.fork())));
        }
        assertThat(c.call(new DbSize(id(), LATEST, Lsn.INVALID, spc, db)))
            .isEqualTo(new PagestreamResponse.DbSize(nextId - 1, total));
      }
      for (KeySpace.Slru slru : KeySpace.Slru.values()) {
        Path out = Files.createDirectories(rebuilt.resolve(slru.dir()));
        try (Stream<Path> s = Files.list(own.resolve(slru.dir()))) {
          for (Path seg : s.toList()) {
            int segno = Integer.parseInt(seg.getFileName().toString(), 16);
            PagestreamResponse r = c.call(new SlruSegment(id(), LATEST, Lsn.INVALID, slru, segno));
            assertThat(r).as("%s", seg).isInstanceOf(PagestreamResponse.SlruSegment.class);
            Files.write(
                out.resolve(seg.getFileName()), ((PagestreamResponse.SlruSegment) r).data());
          }
        }
      }
    }
    DataDirComparison cmp =
        DataDirComparison.compare(own, rebuilt, new DataDirComparison.Facts(Map.of(), Set.of()));
    assertThat(cmp.mismatches).isEmpty();
    assertThat(cmp.pagesCompared).isGreaterThan(1600).isLessThanOrEqualTo(pages);
  }

  /** Reads a fork in pipelined batches of 32 pages into {@code file}. */
  private void writeFork(PagestreamClient c, RelTag rel, ForkNumber fork, int blocks, Path file)
      throws IOException {
    try (var out = Files.newOutputStream(file)) {
      int sent = 0;
      int inFlight = 0;
      int done = 0;
      while (done < blocks) {
        while (sent < blocks && inFlight < 16) {
          int n = Math.min(PagestreamRequest.MAX_BATCH, blocks - sent);
          c.send(new GetPages(id(), LATEST, Lsn.INVALID, rel, fork, sent, n));
          sent += n;
          inFlight++;
        }
        c.flush();
        PagestreamResponse r = c.receive();
        assertThat(r).as("%s %s", rel, fork).isInstanceOf(PagestreamResponse.Pages.class);
        for (byte[] p : ((PagestreamResponse.Pages) r).pages()) {
          out.write(p);
          done++;
        }
        inFlight--;
      }
    }
  }

  @Test
  @Order(2)
  void aBatchEqualsItsSinglePagesAndPipelinedAnswersComeInOrder() throws Exception {
    try (PagestreamClient c = connect()) {
      var batch =
          (PagestreamResponse.Pages)
              c.call(
                  new GetPages(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN, 100, 32));
      List<Long> ids = new ArrayList<>();
      for (int i = 0; i < 32; i++) {
        long id = id();
        ids.add(id);
        c.send(new GetPage(id, LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN, 100 + i));
        // other kinds in between: each answer still comes in its request's place
        long other = id();
        ids.add(other);
        c.send(new Exists(other, LATEST, Lsn.INVALID, rel(accounts + 1_000_000), ForkNumber.MAIN));
      }
      c.flush();
      List<byte[]> singles = new ArrayList<>();
      for (long id : ids) {
        PagestreamResponse r = c.receive();
        assertThat(r.id()).isEqualTo(id);
        if (r instanceof PagestreamResponse.Page p) {
          singles.add(p.page());
        } else {
          assertThat(r).isEqualTo(new PagestreamResponse.Exists(id, false));
        }
      }
      assertThat(digest(singles)).isEqualTo(digest(batch.pages()));
      assertThat(digest(batch.pages())).isNotEqualTo(digest(List.of(new byte[32 * 8192])));
    }
  }

  @Test
  @Order(3)
  void existsNblocksAndDatabaseErrors() throws Exception {
    try (PagestreamClient c = connect()) {
      assertThat(c.call(new Exists(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN)))
          .isEqualTo(new PagestreamResponse.Exists(nextId - 1, true));
      assertThat(c.call(new Exists(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.INIT)))
          .isEqualTo(new PagestreamResponse.Exists(nextId - 1, false));
      PagestreamResponse missing =
          c.call(new Nblocks(id(), LATEST, Lsn.INVALID, rel(999_999), ForkNumber.MAIN));
      assertThat(missing).isInstanceOf(PagestreamResponse.Error.class);
      assertThat(((PagestreamResponse.Error) missing).sqlState()).isEqualTo("42P01");
      PagestreamResponse noDb =
          c.call(new ListRelations(id(), LATEST, Lsn.INVALID, RelTag.DEFAULT_TABLESPACE, 999_999));
      assertThat(((PagestreamResponse.Error) noDb).sqlState()).isEqualTo("3D000");
      // the stream goes on after error answers
      assertThat(c.call(new Nblocks(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN)))
          .isInstanceOf(PagestreamResponse.Nblocks.class);
    }
  }

  @Test
  @Order(4)
  void unknownIdsAreRefusedWithTheirSqlstateAndTheConnectionStaysUsable() throws Exception {
    assertThatThrownBy(() -> connect(TenantId.generate(), env.main()))
        .isInstanceOfSatisfying(
            PagestreamException.class, e -> assertThat(e.sqlState()).isEqualTo("42704"));
    assertThatThrownBy(() -> connect(env.tenant(), TimelineId.generate()))
        .isInstanceOfSatisfying(
            PagestreamException.class, e -> assertThat(e.sqlState()).isEqualTo("42704"));
    try (Raw raw = new Raw()) {
      assertThat(raw.query("pagestream nothex " + env.main())).isEqualTo("E22023");
      assertThat(raw.query("pagestream " + env.tenant() + " " + env.main() + " 0/zz"))
          .isEqualTo("E22023");
      assertThat(raw.query("pagestream " + TenantId.generate() + " " + env.main()))
          .isEqualTo("E42704");
      // the same connection then streams
      assertThat(raw.query("pagestream " + env.tenant() + " " + env.main())).isEqualTo("W");
    }
  }

  @Test
  @Order(5)
  void garbageAndTruncatedRequestsEndOnlyTheirSessionWith08P01() throws Exception {
    try (PagestreamClient other = connect()) {
      byte[] good = encode(new Exists(7, LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN));
      byte[] garbage = good.clone();
      garbage[0] = 0x5A;
      byte[] truncated = java.util.Arrays.copyOf(good, good.length - 3);
      for (byte[] bad : List.of(garbage, truncated, new byte[3])) {
        try (Raw raw = new Raw()) {
          assertThat(raw.query("pagestream " + env.tenant() + " " + env.main())).isEqualTo("W");
          // one good request first: its answer comes before the error
          raw.copyData(good);
          raw.copyData(bad);
          assertThat(raw.next()).as("%s", raw.lastError()).isEqualTo('d');
          assertThat(raw.next()).isEqualTo('E');
          assertThat(raw.lastError()).startsWith("FATAL 08P01");
          assertThat(raw.closed()).isTrue();
        }
        assertThat(
                other.call(new Exists(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN)))
            .isEqualTo(new PagestreamResponse.Exists(nextId - 1, true));
      }
    }
  }

  @Test
  @Order(6)
  void anLsnFarAheadWaitsBoundedlyThenGetsAnErrorWhileOthersAreServed() throws Exception {
    Timeline t = ps.store().timeline(env.tenant(), env.main());
    Lsn ahead = t.lastRecordLsn().plus(1L << 30);
    try (PagestreamClient waiting = connect();
        PagestreamClient other = connect()) {
      long started = System.nanoTime();
      CompletableFuture<PagestreamResponse> answer =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return waiting.call(
                      new GetPage(id(), ahead, ahead, rel(accounts), ForkNumber.MAIN, 0));
                } catch (IOException e) {
                  throw new java.io.UncheckedIOException(e);
                }
              });
      for (int i = 0; i < 20; i++) {
        assertThat(
                other.call(
                    new GetPage(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN, i)))
            .isInstanceOf(PagestreamResponse.Page.class);
      }
      PagestreamResponse r = answer.get(30, TimeUnit.SECONDS);
      assertThat(((PagestreamResponse.Error) r).sqlState()).isEqualTo("57014");
      assertThat(Duration.ofNanos(System.nanoTime() - started))
          .isGreaterThanOrEqualTo(Duration.ofSeconds(3));
      // the waiting stream is usable afterwards
      assertThat(
              waiting.call(new Nblocks(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN)))
          .isInstanceOf(PagestreamResponse.Nblocks.class);
    }
    assertThat(ps.scrapeMetrics())
        .contains("zenith_pagestream_getpage_seconds_bucket")
        .contains("outcome=\"timeout\"")
        .contains("outcome=\"ok\"");
  }

  @Test
  @Order(7)
  void anLsnBelowTheGcCutoffOrTheTimelineStartIsAnErrorAnswer() throws Exception {
    ApiModel.GcInfo gc = ps.gc(env.tenant(), env.main());
    Lsn cutoff = Lsn.parse(gc.cutoff());
    Timeline t = ps.store().timeline(env.tenant(), env.main());
    assertThat(cutoff).isGreaterThan(t.startLsn().plus(8192));
    try (PagestreamClient c = connect()) {
      Lsn below = cutoff.plus(-4096);
      PagestreamResponse r =
          c.call(new GetPage(id(), below, below, rel(accounts), ForkNumber.MAIN, 0));
      assertThat(((PagestreamResponse.Error) r).sqlState()).isEqualTo("22023");
      assertThat(((PagestreamResponse.Error) r).message()).contains("GC cutoff");
      Lsn beforeStart = t.startLsn().plus(-8);
      r = c.call(new Nblocks(id(), beforeStart, beforeStart, rel(accounts), ForkNumber.MAIN));
      assertThat(((PagestreamResponse.Error) r).sqlState()).isEqualTo("22023");
      assertThat(c.call(new GetPage(id(), LATEST, Lsn.INVALID, rel(accounts), ForkNumber.MAIN, 0)))
          .isInstanceOf(PagestreamResponse.Page.class);
    }
    // a stream that would hold an LSN below the cutoff is refused; at the cutoff it runs
    Lsn below = cutoff.plus(-4096);
    assertThatThrownBy(
            () ->
                PagestreamClient.connect(
                    "127.0.0.1", ps.pgPort(), "postgres", null, env.tenant(), env.main(), below, T))
        .isInstanceOfSatisfying(
            PagestreamException.class,
            e -> {
              assertThat(e.sqlState()).isEqualTo("22023");
              assertThat(e.getMessage()).contains("GC cutoff");
            });
    try (PagestreamClient held =
        PagestreamClient.connect(
            "127.0.0.1", ps.pgPort(), "postgres", null, env.tenant(), env.main(), cutoff, T)) {
      assertThat(held.call(new GetPage(id(), cutoff, cutoff, rel(accounts), ForkNumber.MAIN, 0)))
          .isInstanceOf(PagestreamResponse.Page.class);
    }
  }

  @Test
  @Order(8)
  void aSlimBasebackupHasEverythingButRelationFiles() throws Exception {
    String lsn = ps.store().timeline(env.tenant(), env.main()).lastRecordLsn().toString();
    Path full = data.resolve("full.tar");
    Path slim = data.resolve("slim.tar");
    PageserverHarness.Run r =
        PageserverHarness.psql(
            ps, "basebackup " + env.tenant() + " " + env.main() + " " + lsn + " --slim", slim);
    assertThat(r.exit()).as(r.output()).isZero();
    r = PageserverHarness.basebackup(ps, env.tenant(), env.main(), lsn, full);
    assertThat(r.exit()).as(r.output()).isZero();
    Map<String, String> fullEntries = tarContents(full);
    Map<String, String> slimEntries = tarContents(slim);
    Pattern relationFile = Pattern.compile("(global|base/\\d+)/\\d+(_(fsm|vm|init))?(\\.\\d+)?");
    Map<String, String> expected = new java.util.TreeMap<>(fullEntries);
    expected.keySet().removeIf(n -> relationFile.matcher(n).matches());
    assertThat(expected.size()).isLessThan(fullEntries.size() / 10);
    assertThat(slimEntries.keySet()).isEqualTo(expected.keySet());
    assertThat(slimEntries)
        .containsKeys(
            "global/pg_control",
            "global/pg_filenode.map",
            "PG_VERSION",
            "pg_xact/0000",
            "base/" + dbOid + "/PG_VERSION",
            "base/" + dbOid + "/pg_filenode.map");
    assertThat(slimEntries.keySet()).anyMatch(n -> n.startsWith("pg_wal/0000"));
    // the same bytes, except what carries the time of the request
    expected.keySet().stream()
        .filter(n -> !n.equals("global/pg_control") && !n.startsWith("pg_wal/"))
        .forEach(n -> assertThat(slimEntries.get(n)).as(n).isEqualTo(expected.get(n)));
    r =
        PageserverHarness.psql(
            ps, "basebackup " + env.tenant() + " " + env.main() + " --slim --slim", null);
    assertThat(r.exit()).isNotZero();
    assertThat(r.output()).contains("invalid LSN \"--slim\"");
  }

  /** Entry name → SHA-256 of its content (directories: "dir"). */
  private static Map<String, String> tarContents(Path tar) throws Exception {
    Map<String, String> out = new java.util.TreeMap<>();
    try (var in =
        new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(
            Files.newInputStream(tar))) {
      org.apache.commons.compress.archivers.tar.TarArchiveEntry e;
      while ((e = in.getNextEntry()) != null) {
        out.put(
            e.getName().replaceAll("/$", ""),
            e.isDirectory()
                ? "dir"
                : HexFormat.of()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(in.readAllBytes())));
      }
    }
    return out;
  }

  // ---- helpers ----

  private synchronized long id() {
    return nextId++;
  }

  private static String fileName(int relNumber, ForkNumber fork) {
    return Integer.toUnsignedString(relNumber)
        + (fork == ForkNumber.MAIN ? "" : "_" + fork.pgName());
  }

  /** Relation files of a directory (first segments only: the test's files are small). */
  private static Map<String, Long> relationFiles(Path dir) throws IOException {
    Map<String, Long> out = new HashMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : s.toList()) {
        Matcher m = REL_FILE.matcher(p.getFileName().toString());
        if (m.matches()) {
          out.put(p.getFileName().toString(), Files.size(p));
        }
      }
    }
    return out;
  }

  private static String digest(List<byte[]> pages) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    long n = 0;
    for (byte[] p : pages) {
      md.update(p);
      n += p.length;
    }
    return n + ":" + HexFormat.of().formatHex(md.digest());
  }

  /** A request's bytes as the protocol lays them out (docs/formats/pagestream.md). */
  private static byte[] encode(Exists e) {
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(PagestreamRequest.HEADER_SIZE + 13);
    b.put(PagestreamRequest.EXISTS).putLong(e.id()).putLong(e.lsn().value());
    b.putLong(e.notModifiedSince().value());
    b.putInt(e.rel().spcOid()).putInt(e.rel().dbOid()).putInt(e.rel().relNumber());
    b.put((byte) e.fork().ordinal());
    return b.array();
  }

  /** A raw libpq session, for what the client cannot send. Not thread-safe. */
  private final class Raw implements AutoCloseable {
    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private String lastError = "";

    Raw() throws IOException {
      socket = new Socket("127.0.0.1", ps.pgPort());
      socket.setSoTimeout(30_000);
      in = new DataInputStream(socket.getInputStream());
      out = new DataOutputStream(socket.getOutputStream());
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      DataOutputStream d = new DataOutputStream(body);
      d.writeInt(196608);
      d.write("user\0postgres\0database\0postgres\0\0".getBytes(StandardCharsets.UTF_8));
      out.writeInt(4 + body.size());
      body.writeTo(out);
      out.flush();
      while (next() != 'Z') {}
    }

    /** Sends a query; returns "W" (CopyBoth started) or "E" + SQLSTATE (after ReadyForQuery). */
    String query(String sql) throws IOException {
      send('Q', (sql + "\0").getBytes(StandardCharsets.UTF_8));
      while (true) {
        char type = next();
        if (type == 'W') {
          return "W";
        }
        if (type == 'E') {
          String state = lastError.split(" ")[1];
          while (next() != 'Z') {}
          return "E" + state;
        }
      }
    }

    void copyData(byte[] payload) throws IOException {
      send('d', payload);
    }

    private void send(char type, byte[] body) throws IOException {
      out.write(type);
      out.writeInt(4 + body.length);
      out.write(body);
      out.flush();
    }

    /** The next message's type; an ErrorResponse is kept as "SEVERITY SQLSTATE message". */
    char next() throws IOException {
      char type = (char) in.readUnsignedByte();
      byte[] body = new byte[in.readInt() - 4];
      in.readFully(body);
      if (type == 'E') {
        Map<Character, String> f = new HashMap<>();
        int i = 0;
        while (i < body.length && body[i] != 0) {
          char code = (char) body[i++];
          int end = i;
          while (body[end] != 0) {
            end++;
          }
          f.put(code, new String(body, i, end - i, StandardCharsets.UTF_8));
          i = end + 1;
        }
        lastError = f.get('S') + " " + f.get('C') + " " + f.get('M');
      }
      return type;
    }

    String lastError() {
      return lastError;
    }

    /** Whether the server closed the connection (reads end). */
    boolean closed() throws IOException {
      return in.read() < 0;
    }

    @Override
    public void close() throws IOException {
      socket.close();
    }
  }
}
