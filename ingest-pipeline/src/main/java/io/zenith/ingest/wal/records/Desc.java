package io.zenith.ingest.wal.records;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import java.util.List;
import java.util.Locale;

/**
 * Formatting shared by the {@code describe()} methods, mirroring PostgreSQL's. Stateless and
 * thread-safe.
 */
final class Desc {
  private Desc() {}

  /** {@code TABLESPACE_VERSION_DIRECTORY} of PostgreSQL 15 ({@code PG_15_<catversion>}). */
  static final String TABLESPACE_VERSION_DIRECTORY = "PG_15_202209061";

  /** {@code %u}. */
  static String u(int v) {
    return Integer.toUnsignedString(v);
  }

  /** {@code 0x%02X}. */
  static String hex2(int v) {
    return String.format(Locale.ROOT, "0x%02X", v);
  }

  /** {@code relpathperm(rnode, fork)}: the path of a permanent relation's fork file. */
  static String relPath(RelTag rel, ForkNumber fork) {
    String suffix = fork == ForkNumber.MAIN ? "" : "_" + fork.pgName();
    if (rel.spcOid() == RelTag.GLOBAL_TABLESPACE) {
      return "global/" + u(rel.relNumber()) + suffix;
    } else if (rel.spcOid() == RelTag.DEFAULT_TABLESPACE) {
      return "base/" + u(rel.dbOid()) + "/" + u(rel.relNumber()) + suffix;
    }
    return "pg_tblspc/"
        + u(rel.spcOid())
        + "/"
        + TABLESPACE_VERSION_DIRECTORY
        + "/"
        + u(rel.dbOid())
        + "/"
        + u(rel.relNumber())
        + suffix;
  }

  /** {@code xact_desc_relations}. */
  static void relations(StringBuilder sb, String label, List<RelTag> rels) {
    if (!rels.isEmpty()) {
      sb.append("; ").append(label).append(':');
      for (RelTag r : rels) {
        sb.append(' ').append(relPath(r, ForkNumber.MAIN));
      }
    }
  }

  /** {@code xact_desc_subxacts}. */
  static void subxacts(StringBuilder sb, List<Integer> subxacts) {
    if (!subxacts.isEmpty()) {
      sb.append("; subxacts:");
      for (int x : subxacts) {
        sb.append(' ').append(u(x));
      }
    }
  }

  /** {@code xact_desc_stats}. */
  static void stats(StringBuilder sb, String label, List<XactRecord.DroppedStats> stats) {
    if (!stats.isEmpty()) {
      sb.append("; ").append(label).append("dropped stats:");
      for (XactRecord.DroppedStats s : stats) {
        sb.append(' ').append(s.kind()).append('/').append(u(s.dbOid())).append('/');
        sb.append(u(s.objOid()));
      }
    }
  }

  /** {@code standby_desc_invalidations}. */
  static void invalidations(
      StringBuilder sb,
      List<XactRecord.InvalidationMessage> msgs,
      int dbId,
      int tsId,
      boolean relcacheInitFileInval) {
    if (msgs.isEmpty()) {
      return;
    }
    if (relcacheInitFileInval) {
      sb.append("; relcache init file inval dbid ").append(u(dbId)).append(" tsid ");
      sb.append(u(tsId));
    }
    sb.append("; inval msgs:");
    for (XactRecord.InvalidationMessage m : msgs) {
      sb.append(' ').append(m.describe());
    }
  }

  /** {@code out_infobits} of heapdesc.c (each name followed by a space). */
  static void infobits(StringBuilder sb, int infobits) {
    if ((infobits & HeapRecord.XLHL_XMAX_IS_MULTI) != 0) {
      sb.append("IS_MULTI ");
    }
    if ((infobits & HeapRecord.XLHL_XMAX_LOCK_ONLY) != 0) {
      sb.append("LOCK_ONLY ");
    }
    if ((infobits & HeapRecord.XLHL_XMAX_EXCL_LOCK) != 0) {
      sb.append("EXCL_LOCK ");
    }
    if ((infobits & HeapRecord.XLHL_XMAX_KEYSHR_LOCK) != 0) {
      sb.append("KEYSHR_LOCK ");
    }
    if ((infobits & HeapRecord.XLHL_KEYS_UPDATED) != 0) {
      sb.append("KEYS_UPDATED ");
    }
  }

  /** pg_waldump leaves trailing spaces after some lists; a one-line description does not. */
  static String line(StringBuilder sb) {
    int end = sb.length();
    while (end > 0 && sb.charAt(end - 1) == ' ') {
      end--;
    }
    return sb.substring(0, end);
  }
}
