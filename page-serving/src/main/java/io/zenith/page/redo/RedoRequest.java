package io.zenith.page.redo;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalRecord;
import java.util.List;

/**
 * One page to rebuild: the target block, its base image (or none, when the first record initializes
 * the page or restores a full-page image), and the WAL records to apply to it in LSN order.
 *
 * <p>Records are given as PostgreSQL wrote them (header included) with their exact start and end
 * LSN: redo stamps the end LSN on the page. Each record must reference the target block, or be a
 * heap record whose implicit visibility-map change lands on the target {@code vm} page. Only page
 * records are accepted (heap, heap2, btree, hash, gin, gist, sequence, spgist, brin, generic, and
 * XLOG full-page images); the process rejects others.
 *
 * <p>Immutable as long as the caller does not modify the arrays it handed over (the base image and
 * the records' arrays are not copied).
 *
 * @param rel the relation
 * @param fork the fork
 * @param blockNumber the block, an unsigned 32-bit number held in an int ({@code 0xFFFFFFFF},
 *     {@code InvalidBlockNumber}, is refused)
 * @param baseImage the page before the first record, 8192 bytes, or null to start from an all-zero
 *     page
 * @param records the records, in increasing LSN order, each ending before the next starts
 */
public record RedoRequest(
    RelTag rel, ForkNumber fork, int blockNumber, byte[] baseImage, List<WalRecord> records) {

  public RedoRequest {
    if (rel == null || fork == null || records == null) {
      throw new IllegalArgumentException("rel, fork and records are required");
    }
    if (blockNumber == -1) {
      throw new IllegalArgumentException("block 4294967295 is InvalidBlockNumber");
    }
    if (baseImage != null && baseImage.length != PageLayout.BLCKSZ) {
      throw new IllegalArgumentException(
          "a base image is " + PageLayout.BLCKSZ + " bytes, got " + baseImage.length);
    }
    records = List.copyOf(records);
    Lsn prevEnd = Lsn.INVALID;
    for (WalRecord r : records) {
      if (!r.end().isAfter(r.lsn())) {
        throw new IllegalArgumentException(
            "record at " + r.lsn() + " ends at " + r.end() + ", not after its start");
      }
      if (r.lsn().isBefore(prevEnd)) {
        throw new IllegalArgumentException(
            "records out of order: " + r.lsn() + " starts before the previous end " + prevEnd);
      }
      prevEnd = r.end();
    }
  }

  /** A request from decoded records (their raw records are sent). */
  public static RedoRequest ofDecoded(
      RelTag rel, ForkNumber fork, int blockNumber, byte[] baseImage, List<DecodedRecord> records) {
    return new RedoRequest(
        rel, fork, blockNumber, baseImage, records.stream().map(DecodedRecord::raw).toList());
  }

  public boolean hasBaseImage() {
    return baseImage != null;
  }

  /** Start LSN of the first record, or {@link Lsn#INVALID} when there is none. */
  public Lsn firstLsn() {
    return records.isEmpty() ? Lsn.INVALID : records.getFirst().lsn();
  }

  /** End LSN of the last record (the page LSN redo leaves), or {@link Lsn#INVALID}. */
  public Lsn lastEnd() {
    return records.isEmpty() ? Lsn.INVALID : records.getLast().end();
  }

  /** The target as pg_waldump prints block references: {@code rel 1663/5/16384 fork main blk 7}. */
  public String target() {
    return "rel "
        + rel
        + " fork "
        + fork.pgName()
        + " blk "
        + Integer.toUnsignedString(blockNumber);
  }

  /** The target, the base image, and the records' LSN range, for messages. */
  public String describe() {
    StringBuilder sb = new StringBuilder(target());
    sb.append(hasBaseImage() ? " from a base image" : " from a zero page");
    if (records.isEmpty()) {
      sb.append(", no records");
    } else {
      sb.append(", ")
          .append(records.size())
          .append(records.size() == 1 ? " record " : " records ")
          .append(firstLsn())
          .append("..")
          .append(lastEnd());
    }
    return sb.toString();
  }

  /** Bytes of the records (headers included). */
  public long recordBytes() {
    long n = 0;
    for (WalRecord r : records) {
      n += r.totalLength();
    }
    return n;
  }
}
