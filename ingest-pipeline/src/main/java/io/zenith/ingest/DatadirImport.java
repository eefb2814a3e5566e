package io.zenith.ingest;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.keys.KeySpace.Slru;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.PgControl;
import io.zenith.ingest.pg.SlruLayout;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Imports a cleanly shut down PostgreSQL 15 data directory (the output of initdb) into a new root
 * timeline, as images at the end LSN of its shutdown checkpoint record: relation files, relation
 * maps, database directories, SLRU segments, two-phase files, pg_control and its checkpoint.
 * Durable on return (the timeline is checkpointed). Runs on the caller's thread (blocking I/O).
 */
public final class DatadirImport {
  private DatadirImport() {}

  /** What an import produced. */
  public record Result(Timeline timeline, Lsn lsn, long systemId, long pages, int relations) {}

  private static final Pattern REL_FILE =
      Pattern.compile("(\\d+)(?:_(fsm|vm|init))?(?:\\.(\\d+))?");

  /**
   * Imports {@code datadir} as timeline {@code timelineId} of {@code tenant} (which must exist).
   *
   * @throws ImportException with a one-line reason when the directory is not a cleanly shut down
   *     PostgreSQL 15 data directory or uses what Zenith does not support (tablespaces)
   */
  public static Result run(LayerStore store, TenantId tenant, TimelineId timelineId, Path datadir)
      throws IOException {
    PgControl control;
    try {
      control = PgControl.parse(Files.readAllBytes(datadir.resolve("global/pg_control")));
    } catch (IllegalArgumentException e) {
      throw new ImportException(datadir + ": " + e.getMessage());
    }
    if (control.state() != PgControl.DB_SHUTDOWNED) {
      throw new ImportException(
          datadir + " was not shut down cleanly (pg_control state " + control.state() + ")");
    }
    try (Stream<Path> tbs = Files.list(datadir.resolve("pg_tblspc"))) {
      if (tbs.findAny().isPresent()) {
        throw new ImportException(datadir + " uses tablespaces, which Zenith does not support");
      }
    }
    Lsn checkpointLsn = Lsn.of(control.checkPoint());
    Lsn end = checkpointEnd(datadir, checkpointLsn, control.walSegmentSize());

    Timeline t = store.createRootTimeline(tenant, timelineId, end, control.systemId(), 15);
    long[] pages = {0};
    int relations = 0;
    t.put(KeySpace.CONTROL_FILE, end, new Value.Image(control.toBytes()));
    t.put(KeySpace.CHECKPOINT, end, new Value.Image(control.checkPointCopy().encode()));
    t.put(
        KeySpace.relmap(1664, 0),
        end,
        new Value.Image(Files.readAllBytes(datadir.resolve("global/pg_filenode.map"))));
    relations += importRelations(t, end, datadir.resolve("global"), 1664, 0, pages);
    try (Stream<Path> dbs = Files.list(datadir.resolve("base"))) {
      for (Path db : dbs.sorted().toList()) {
        int dbOid = Integer.parseUnsignedInt(db.getFileName().toString());
        t.put(
            KeySpace.dbDir(1663, dbOid),
            end,
            new Value.Image(Files.readAllBytes(db.resolve("PG_VERSION"))));
        t.put(
            KeySpace.relmap(1663, dbOid),
            end,
            new Value.Image(Files.readAllBytes(db.resolve("pg_filenode.map"))));
        relations += importRelations(t, end, db, 1663, dbOid, pages);
      }
    }
    for (Slru slru : Slru.values()) {
      importSlru(t, end, datadir.resolve(slru.dir()), slru);
    }
    try (Stream<Path> files = Files.list(datadir.resolve("pg_twophase"))) {
      for (Path f : files.toList()) {
        t.put(
            KeySpace.twoPhase(Integer.parseUnsignedInt(f.getFileName().toString(), 16)),
            end,
            new Value.Image(Files.readAllBytes(f)));
      }
    }
    t.finishRecord(end, checkpointLsn);
    t.checkpoint();
    return new Result(t, end, control.systemId(), pages[0], relations);
  }

  /** The end of the checkpoint record: read from the data directory's own WAL. */
  static Lsn checkpointEnd(Path datadir, Lsn checkpoint, int segmentSize) throws IOException {
    WalSegmentName seg = WalSegmentName.of(1, checkpoint, segmentSize);
    Path file = datadir.resolve("pg_wal").resolve(seg.fileName(segmentSize));
    WalRecordAssembler a =
        new WalRecordAssembler(
            seg.startLsn(segmentSize),
            WalRecordAssembler.Options.DEFAULT.withSegmentSize(segmentSize));
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.allocate(1 << 20);
      while (ch.read(buf) > 0 || buf.position() > 0) {
        buf.flip();
        Iterator<WalRecord> it = a.feed(buf);
        while (it.hasNext()) {
          WalRecord r = it.next();
          if (r.lsn().equals(checkpoint)) {
            return r.end();
          }
        }
        if (a.ended()) {
          break;
        }
        buf.clear();
      }
    }
    throw new ImportException("the checkpoint record at " + checkpoint + " is not in " + file);
  }

  private static int importRelations(Timeline t, Lsn lsn, Path dir, int spc, int db, long[] pages)
      throws IOException {
    // relfilenode -> fork -> segment files in order
    Map<Integer, Map<ForkNumber, TreeMap<Integer, Path>>> rels =
        new TreeMap<>(Integer::compareUnsigned);
    try (Stream<Path> files = Files.list(dir)) {
      for (Path f : files.toList()) {
        Matcher m = REL_FILE.matcher(f.getFileName().toString());
        if (!m.matches() || !Files.isRegularFile(f)) {
          continue;
        }
        ForkNumber fork =
            switch (m.group(2) == null ? "" : m.group(2)) {
              case "fsm" -> ForkNumber.FSM;
              case "vm" -> ForkNumber.VISIBILITY_MAP;
              case "init" -> ForkNumber.INIT;
              default -> ForkNumber.MAIN;
            };
        int segno = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
        rels.computeIfAbsent(Integer.parseUnsignedInt(m.group(1)), k -> new TreeMap<>())
            .computeIfAbsent(fork, k -> new TreeMap<>())
            .put(segno, f);
      }
    }
    byte[] zero = new byte[PageLayout.BLCKSZ];
    for (Map.Entry<Integer, Map<ForkNumber, TreeMap<Integer, Path>>> rel : rels.entrySet()) {
      RelTag tag = new RelTag(spc, db, rel.getKey());
      for (Map.Entry<ForkNumber, TreeMap<Integer, Path>> fork : rel.getValue().entrySet()) {
        int blocks = 0;
        for (Map.Entry<Integer, Path> seg : fork.getValue().entrySet()) {
          byte[] content = Files.readAllBytes(seg.getValue());
          if (content.length % PageLayout.BLCKSZ != 0) {
            throw new ImportException(seg.getValue() + " is not a whole number of 8 KiB pages");
          }
          int base = seg.getKey() * PageLayout.RELSEG_SIZE;
          for (int i = 0; i < content.length / PageLayout.BLCKSZ; i++) {
            if (!java.util.Arrays.equals(
                content,
                i * PageLayout.BLCKSZ,
                (i + 1) * PageLayout.BLCKSZ,
                zero,
                0,
                PageLayout.BLCKSZ)) {
              byte[] page =
                  java.util.Arrays.copyOfRange(
                      content, i * PageLayout.BLCKSZ, (i + 1) * PageLayout.BLCKSZ);
              t.put(KeySpace.relBlock(tag, fork.getKey(), base + i), lsn, new Value.Image(page));
              pages[0]++;
            }
          }
          blocks = base + content.length / PageLayout.BLCKSZ;
        }
        t.put(
            KeySpace.relSize(tag, fork.getKey()),
            lsn,
            new Value.Image(KeySpace.encodeSize(blocks)));
      }
    }
    return rels.size();
  }

  private static void importSlru(Timeline t, Lsn lsn, Path dir, Slru slru) throws IOException {
    if (!Files.isDirectory(dir)) {
      return;
    }
    List<Path> segments = new ArrayList<>();
    try (Stream<Path> s = Files.list(dir)) {
      s.filter(p -> p.getFileName().toString().matches("[0-9A-F]{4,6}"))
          .sorted()
          .forEach(segments::add);
    }
    for (Path seg : segments) {
      int segno = Integer.parseInt(seg.getFileName().toString(), 16);
      byte[] content = Files.readAllBytes(seg);
      int n = content.length / PageLayout.BLCKSZ;
      if (content.length % PageLayout.BLCKSZ != 0 || n > SlruLayout.PAGES_PER_SEGMENT) {
        throw new ImportException(seg + " is not an SLRU segment of whole 8 KiB pages");
      }
      for (int i = 0; i < n; i++) {
        Key k = KeySpace.slruBlock(slru, segno, i);
        t.put(
            k,
            lsn,
            new Value.Image(
                java.util.Arrays.copyOfRange(
                    content, i * PageLayout.BLCKSZ, (i + 1) * PageLayout.BLCKSZ)));
      }
      t.put(KeySpace.slruSegmentSize(slru, segno), lsn, new Value.Image(KeySpace.encodeSize(n)));
    }
  }

  /** The data directory cannot be imported; the message says why in one line. */
  public static final class ImportException extends RuntimeException {
    @java.io.Serial private static final long serialVersionUID = 1L;

    public ImportException(String message) {
      super(message);
    }
  }
}
