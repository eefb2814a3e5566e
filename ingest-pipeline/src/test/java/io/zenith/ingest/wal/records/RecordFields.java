package io.zenith.ingest.wal.records;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The fields of a typed record in the normalized form {@link PgWaldumpOracle#fields} produces,
 * built from the record's accessors (not from {@code describe()}), so that the two can be compared.
 * Stateless and thread-safe.
 */
final class RecordFields {
  private RecordFields() {}

  private static String u(int v) {
    return Integer.toUnsignedString(v);
  }

  private static String ints(List<Integer> xs) {
    return xs.stream().map(Integer::toUnsignedString).collect(Collectors.joining(" "));
  }

  private static String rel(RelTag r) {
    return u(r.spcOid()) + "/" + u(r.dbOid()) + "/" + u(r.relNumber());
  }

  private static String rels(List<RelTag> rs) {
    return rs.stream().map(RecordFields::rel).collect(Collectors.joining(" "));
  }

  private static String stats(List<XactRecord.DroppedStats> s) {
    return s.stream()
        .map(x -> x.kind() + "/" + u(x.dbOid()) + "/" + u(x.objOid()))
        .collect(Collectors.joining(" "));
  }

  /** heapdesc.c's out_infobits names, in its order. */
  private static String infobits(int bits) {
    List<String> names = new ArrayList<>();
    String[] all = {"IS_MULTI", "LOCK_ONLY", "EXCL_LOCK", "KEYSHR_LOCK", "KEYS_UPDATED"};
    for (int i = 0; i < all.length; i++) {
      if ((bits & (1 << i)) != 0) {
        names.add(all[i]);
      }
    }
    return String.join(" ", names);
  }

  private static String block(RelTag rel, String fork, int blk) {
    return rel(rel) + " " + fork + " " + u(blk);
  }

  static Map<String, String> of(PgRecord p) {
    Map<String, String> m = new LinkedHashMap<>();
    switch (p) {
      case XlogRecord.Checkpoint c -> {
        m.put("redo", c.redo().toString());
        m.put("tli", u(c.thisTimeLineId()));
        m.put("prevTli", u(c.prevTimeLineId()));
        m.put("fpw", Boolean.toString(c.fullPageWrites()));
        m.put("epoch", Long.toString(c.nextXid() >>> 32));
        m.put("xid", Long.toString(c.nextXid() & 0xFFFF_FFFFL));
        m.put("oid", u(c.nextOid()));
        m.put("multi", u(c.nextMulti()));
        m.put("offset", u(c.nextMultiOffset()));
        m.put("oldestXid", u(c.oldestXid()));
        m.put("oldestXidDb", u(c.oldestXidDb()));
        m.put("oldestMulti", u(c.oldestMulti()));
        m.put("oldestMultiDb", u(c.oldestMultiDb()));
        m.put("oldestCommitTsXid", u(c.oldestCommitTsXid()));
        m.put("newestCommitTsXid", u(c.newestCommitTsXid()));
        m.put("oldestActiveXid", u(c.oldestActiveXid()));
        m.put("kind", c.shutdown() ? "shutdown" : "online");
      }
      case XlogRecord.NextOid n -> m.put("oid", u(n.nextOid()));
      case XlogRecord.Fpi f -> {
        for (BlockRef b : f.blocks()) {
          m.put(
              "blkref" + b.id(),
              block(b.rel(), b.fork().pgName(), b.blockNumber()) + (b.hasImage() ? " FPW" : ""));
        }
      }
      case XlogRecord.Switch s -> {}
      case XlogRecord.ParameterChange c -> {
        m.put("maxConnections", Integer.toString(c.maxConnections()));
        m.put("maxWorkerProcesses", Integer.toString(c.maxWorkerProcesses()));
        m.put("maxWalSenders", Integer.toString(c.maxWalSenders()));
        m.put("maxPreparedXacts", Integer.toString(c.maxPreparedXacts()));
        m.put("maxLocksPerXact", Integer.toString(c.maxLocksPerXact()));
        m.put("walLevel", List.of("minimal", "replica", "logical").get(c.walLevel()));
        m.put("walLogHints", c.walLogHints() ? "on" : "off");
        m.put("trackCommitTimestamp", c.trackCommitTimestamp() ? "on" : "off");
      }
      case XlogRecord.EndOfRecovery e -> {
        m.put("tli", u(e.thisTimeLineId()));
        m.put("prevTli", u(e.prevTimeLineId()));
        m.put("time", e.endTime().toInstant().toString());
      }
      case XactRecord.Commit c -> {
        m.put("twophaseXid", u(c.twophaseXid()));
        m.put("time", c.xactTime().toInstant().toString());
        putIf(m, "rels", rels(c.rels()));
        putIf(m, "subxacts", ints(c.subxacts()));
        putIf(m, "dropped stats", stats(c.droppedStats()));
        if (!c.invalidations().isEmpty()) {
          m.put("ninvals", Integer.toString(c.invalidations().size()));
          if ((c.xinfo() & XactRecord.COMPLETION_UPDATE_RELCACHE_FILE) != 0) {
            m.put("relcacheInitFileInval", "dbid " + u(c.dbId()) + " tsid " + u(c.tsId()));
          }
        }
        if ((c.xinfo() & XactRecord.COMPLETION_APPLY_FEEDBACK) != 0) {
          m.put("apply_feedback", "true");
        }
        if ((c.xinfo() & XactRecord.COMPLETION_FORCE_SYNC_COMMIT) != 0) {
          m.put("sync", "true");
        }
        if ((c.xinfo() & XactRecord.XINFO_HAS_ORIGIN) != 0) {
          m.put("origin", origin(c.originId(), c.originLsn(), c.originTimestamp()));
        }
      }
      case XactRecord.Abort a -> {
        m.put("twophaseXid", u(a.twophaseXid()));
        m.put("time", a.xactTime().toInstant().toString());
        putIf(m, "rels", rels(a.rels()));
        putIf(m, "subxacts", ints(a.subxacts()));
        putIf(m, "dropped stats", stats(a.droppedStats()));
        if ((a.xinfo() & XactRecord.XINFO_HAS_ORIGIN) != 0) {
          m.put("origin", origin(a.originId(), a.originLsn(), a.originTimestamp()));
        }
      }
      case XactRecord.Prepare x -> {
        m.put("gid", x.gid());
        m.put("time", x.preparedAt().toInstant().toString());
        putIf(m, "rels(commit)", rels(x.commitRels()));
        putIf(m, "rels(abort)", rels(x.abortRels()));
        putIf(m, "commit dropped stats", stats(x.commitStats()));
        putIf(m, "abort dropped stats", stats(x.abortStats()));
        putIf(m, "subxacts", ints(x.subxacts()));
        if (!x.invalidations().isEmpty()) {
          m.put("ninvals", Integer.toString(x.invalidations().size()));
          if (x.initFileInval()) {
            m.put("relcacheInitFileInval", "dbid " + u(x.database()) + " tsid 0");
          }
        }
        if (x.originId() != 0) {
          m.put("origin", origin(x.originId(), x.originLsn(), x.originTimestamp()));
        }
      }
      case XactRecord.Assignment a -> {
        m.put("xtop", u(a.xtop()));
        m.put("subxacts", ints(a.subxacts()));
      }
      case SmgrRecord.Create c -> {
        m.put("rel", rel(c.rel()));
        m.put("fork", c.fork().pgName());
      }
      case SmgrRecord.Truncate t -> {
        m.put("blkno", u(t.blkno()));
        m.put("flags", Integer.toString(t.flags()));
        m.put("rel", rel(t.rel()));
      }
      case DbaseRecord.CreateFileCopy c -> {
        m.put("srcTablespaceId", u(c.srcTablespaceId()));
        m.put("srcDbId", u(c.srcDbId()));
        m.put("tablespaceId", u(c.tablespaceId()));
        m.put("dbId", u(c.dbId()));
      }
      case DbaseRecord.CreateWalLog c -> {
        m.put("tablespaceId", u(c.tablespaceId()));
        m.put("dbId", u(c.dbId()));
      }
      case DbaseRecord.Drop d ->
          m.put(
              "dirs",
              d.tablespaceIds().stream()
                  .map(ts -> u(ts) + "/" + u(d.dbId()))
                  .collect(Collectors.joining(" ")));
      case HeapRecord h -> heap(h, m);
      case ClogRecord.ZeroPage z -> m.put("pageno", Integer.toString(z.pageno()));
      case ClogRecord.Truncate t -> {
        m.put("pageno", Integer.toString(t.pageno()));
        m.put("oldestXact", u(t.oldestXact()));
      }
      case MultiXactRecord.ZeroOffPage z -> m.put("pageno", Integer.toString(z.pageno()));
      case MultiXactRecord.ZeroMemPage z -> m.put("pageno", Integer.toString(z.pageno()));
      case MultiXactRecord.CreateId c -> {
        m.put("mid", u(c.mid()));
        m.put("moff", u(c.moff()));
        m.put("nmembers", Integer.toString(c.members().size()));
        List<String> abbreviations =
            List.of("keysh", "sh", "fornokeyupd", "forupd", "nokeyupd", "upd");
        m.put(
            "members",
            c.members().stream()
                .map(x -> u(x.xid()) + ":" + abbreviations.get(x.status().code()))
                .collect(Collectors.joining(" ")));
      }
      case MultiXactRecord.TruncateId t -> {
        m.put("startTruncOff", u(t.startTruncOff()));
        m.put("endTruncOff", u(t.endTruncOff()));
        m.put("startTruncMemb", u(t.startTruncMemb()));
        m.put("endTruncMemb", u(t.endTruncMemb()));
      }
      case RelmapRecord.Update r -> {
        m.put("dbId", u(r.dbId()));
        m.put("tsId", u(r.tsId()));
        m.put("nbytes", Integer.toString(r.nbytes()));
      }
      case StandbyRecord.RunningXacts r -> {
        m.put("nextXid", u(r.nextXid()));
        m.put("latestCompletedXid", u(r.latestCompletedXid()));
        m.put("oldestRunningXid", u(r.oldestRunningXid()));
        m.put("xcnt", Integer.toString(r.xcnt()));
        m.put("xids", ints(r.xids()));
        m.put("overflow", Boolean.toString(r.subxidOverflow()));
      }
      case PgRecord.Other o -> throw new IllegalArgumentException("not a typed record: " + o);
    }
    return m;
  }

  private static void heap(HeapRecord h, Map<String, String> m) {
    switch (h) {
      case HeapRecord.Insert i -> {
        m.put("off", Integer.toString(i.offnum()));
        m.put("flags", Integer.toString(i.flags()));
        m.put("blkref0", block(i.rel(), "main", i.block()));
      }
      case HeapRecord.Delete d -> {
        m.put("off", Integer.toString(d.offnum()));
        m.put("flags", Integer.toString(d.flags()));
        m.put("infobits", infobits(d.infobitsSet()));
        m.put("blkref0", block(d.rel(), "main", d.block()));
      }
      case HeapRecord.Update x -> {
        m.put("oldOff", Integer.toString(x.oldOffnum()));
        m.put("oldXmax", u(x.oldXmax()));
        m.put("flags", Integer.toString(x.flags()));
        m.put("infobits", infobits(x.oldInfobitsSet()));
        m.put("newOff", Integer.toString(x.newOffnum()));
        m.put("newXmax", u(x.newXmax()));
        m.put("blkref0", block(x.rel(), "main", x.newBlock()));
        if (x.oldBlock() != x.newBlock()) {
          m.put("blkref1", block(x.rel(), "main", x.oldBlock()));
        }
      }
      case HeapRecord.Lock l -> {
        m.put("off", Integer.toString(l.offnum()));
        m.put("xid", u(l.lockingXid()));
        m.put("flags", Integer.toString(l.flags()));
        m.put("infobits", infobits(l.infobitsSet()));
        m.put("blkref0", block(l.rel(), "main", l.block()));
      }
      case HeapRecord.Inplace i -> {
        m.put("off", Integer.toString(i.offnum()));
        m.put("blkref0", block(i.rel(), "main", i.block()));
      }
      case HeapRecord.MultiInsert x -> {
        m.put("ntuples", Integer.toString(x.ntuples()));
        m.put("flags", Integer.toString(x.flags()));
        m.put("blkref0", block(x.rel(), "main", x.block()));
      }
      case HeapRecord.LockUpdated l -> {
        m.put("off", Integer.toString(l.offnum()));
        m.put("xmax", u(l.xmax()));
        m.put("flags", Integer.toString(l.flags()));
        m.put("infobits", infobits(l.infobitsSet()));
        m.put("blkref0", block(l.rel(), "main", l.block()));
      }
      case HeapRecord.Visible v -> {
        m.put("cutoffXid", u(v.cutoffXid()));
        m.put("flags", Integer.toString(v.flags()));
        m.put("blkref0", block(v.rel(), "vm", v.vmBlock()));
        m.put("blkref1", block(v.rel(), "main", v.heapBlock()));
      }
      case HeapRecord.FreezePage f -> {
        m.put("cutoffXid", u(f.cutoffXid()));
        m.put("ntuples", Integer.toString(f.ntuples()));
        m.put("blkref0", block(f.rel(), "main", f.block()));
      }
      case HeapRecord.Prune x -> {
        m.put("latestRemovedXid", u(x.latestRemovedXid()));
        m.put("nredirected", Integer.toString(x.nredirected()));
        m.put("ndead", Integer.toString(x.ndead()));
        m.put("blkref0", block(x.rel(), "main", x.block()));
      }
      case HeapRecord.Vacuum x -> {
        m.put("nunused", Integer.toString(x.nunused()));
        m.put("blkref0", block(x.rel(), "main", x.block()));
      }
    }
  }

  private static void putIf(Map<String, String> m, String key, String value) {
    if (!value.isEmpty()) {
      m.put(key, value);
    }
  }

  private static String origin(int id, io.zenith.wal.Lsn lsn, TimestampTz time) {
    return u(id) + " " + lsn + " " + time.toInstant();
  }
}
