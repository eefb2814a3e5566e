package io.zenith.it.regress;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.page.PageKind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The comparison's rules on hand-made data directories (the real one: the fidelity test). */
class DataDirComparisonTest {
  @TempDir Path compute;
  @TempDir Path rebuilt;

  private static final DataDirComparison.Facts NO_FACTS =
      new DataDirComparison.Facts(Map.of(), Set.of());

  /** A heap page with one tuple holding {@code value}, page LSN 0/{@code lsn}. */
  private static byte[] heapPage(int value, int lsn) {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 0).putInt(4, lsn);
    b.putShort(12, (short) 28).putShort(14, (short) 8160).putShort(16, (short) 8192);
    b.putShort(18, (short) 0x2004);
    b.putInt(24, 8160 | (1 << 15) | (28 << 17));
    b.putInt(8160, 100);
    b.putShort(8160 + 18, (short) 1);
    b.putShort(8160 + 20, (short) 0x0800);
    b.put(8160 + 22, (byte) 24);
    b.putInt(8160 + 24, value);
    return b.array();
  }

  /** A sequence page: last_value, log_cnt, is_called. */
  private static byte[] sequencePage(long lastValue, long logCnt) {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 0).putInt(4, 0x100);
    b.putShort(12, (short) 28).putShort(14, (short) 8136).putShort(16, (short) 8184);
    b.putShort(18, (short) 0x2004);
    b.putInt(8184, 0x1717); // SEQ_MAGIC
    b.putInt(24, 8136 | (1 << 15) | (41 << 17));
    b.putShort(8136 + 18, (short) 3);
    b.putShort(8136 + 20, (short) 0x0800);
    b.put(8136 + 22, (byte) 24);
    b.putLong(8136 + 24, lastValue);
    b.putLong(8136 + 32, logCnt);
    b.put(8136 + 40, (byte) 1);
    return b.array();
  }

  /** An empty visibility-map page as {@code vm_extend} writes it: LSN 0, no bit set. */
  private static byte[] emptyVmPage() {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(8, (short) 0x1234); // a checksum
    b.putShort(12, (short) 24).putShort(14, (short) 8192).putShort(16, (short) 8192);
    b.putShort(18, (short) 0x2004);
    return b.array();
  }

  private void write(Path root, String file, byte[]... pages) throws IOException {
    Path p = root.resolve(file);
    Files.createDirectories(p.getParent());
    ByteBuffer all = ByteBuffer.allocate(pages.length * 8192);
    for (byte[] page : pages) {
      all.put(page);
    }
    Files.write(p, all.array());
  }

  private DataDirComparison compare(DataDirComparison.Facts facts) throws IOException {
    for (Path root : new Path[] {compute, rebuilt}) {
      Files.createDirectories(root.resolve("base"));
      Files.createDirectories(root.resolve("pg_twophase"));
    }
    return DataDirComparison.compare(compute, rebuilt, facts);
  }

  @Test
  void equalPagesAndHintsPassAChangedTupleDoesNot() throws IOException {
    write(compute, "base/5/1000", heapPage(1, 0x200), heapPage(2, 0x300));
    byte[] hinted = heapPage(1, 0x200);
    hinted[8160 + 21] |= 0x01; // HEAP_XMIN_COMMITTED
    write(rebuilt, "base/5/1000", hinted, heapPage(3, 0x300));
    DataDirComparison c = compare(NO_FACTS);
    assertThat(c.pagesCompared).isEqualTo(2);
    assertThat(c.mismatches).singleElement().satisfies(m -> assertThat(m.block()).isEqualTo(1));
  }

  @Test
  void trailingZeroAndEmptyMapPagesAreNotWalLoggedAnythingElseOnOneSideIs() throws IOException {
    write(compute, "base/5/1000", heapPage(1, 0x200), new byte[8192]);
    write(rebuilt, "base/5/1000", heapPage(1, 0x200));
    write(compute, "base/5/1000_vm", emptyVmPage()); // VACUUM pinned the map, set no bit
    write(compute, "base/5/1001", heapPage(1, 0x200), heapPage(2, 0x300));
    write(rebuilt, "base/5/1001", heapPage(1, 0x200));
    write(compute, "base/5/1002_vm"); // an existing, empty fork the basebackup lacks
    write(rebuilt, "global/1003", heapPage(7, 0x400)); // a relation the compute does not have
    write(rebuilt, "global/1004_vm", emptyVmPage()); // not even an empty fork of one
    DataDirComparison c = compare(NO_FACTS);
    assertThat(c.zeroTailPages).isEqualTo(1);
    assertThat(c.emptyVmPagesWithoutWal).isEqualTo(1);
    assertThat(c.mismatches)
        .extracting(DataDirComparison.Mismatch::file)
        .containsExactlyInAnyOrder(
            "base/5/1001", "base/5/1002_vm", "global/1003", "global/1004_vm");
  }

  @Test
  void unloggedRelationsAreComparedByTheirInitForkAndFsmNever() throws IOException {
    write(compute, "base/5/2000", heapPage(1, 0x200));
    write(compute, "base/5/2000_init", heapPage(0, 0));
    write(rebuilt, "base/5/2000", heapPage(0, 0x100));
    write(rebuilt, "base/5/2000_init", heapPage(0, 0x100)); // init forks: LSN not compared
    write(compute, "base/5/2001_fsm", heapPage(1, 0));
    write(compute, "base/5/t3_2002", heapPage(1, 0));
    DataDirComparison c = compare(NO_FACTS);
    assertThat(c.mismatches).isEmpty();
    assertThat(c.pagesCompared).isEqualTo(1);
  }

  @Test
  void sequencesMayBeAheadInTheirDirectionNeverBehind() throws IOException {
    write(compute, "base/5/3000", sequencePage(10, 22));
    write(rebuilt, "base/5/3000", sequencePage(32, 0));
    write(compute, "base/5/3001", sequencePage(-1, 31));
    write(rebuilt, "base/5/3001", sequencePage(-33, 0));
    write(compute, "base/5/3002", sequencePage(10, 22));
    write(rebuilt, "base/5/3002", sequencePage(5, 0));
    DataDirComparison c =
        compare(
            new DataDirComparison.Facts(
                Map.of(
                    "base/5/3000", new DataDirComparison.Sequence(1, false),
                    "base/5/3001", new DataDirComparison.Sequence(-1, false),
                    "base/5/3002", new DataDirComparison.Sequence(1, false)),
                Set.of()));
    assertThat(c.comparedByKind).containsEntry(PageKind.SEQUENCE, 3);
    assertThat(c.sequencesAhead).isEqualTo(2);
    assertThat(c.mismatches)
        .singleElement()
        .satisfies(m -> assertThat(m.file()).isEqualTo("base/5/3002"));
  }

  @Test
  void slruPagesAndTwoPhaseFilesAreComparedByteForByte() throws IOException {
    byte[] clog = new byte[8192];
    clog[0] = 0x55; // committed
    byte[] aborted = clog.clone();
    aborted[1] = 0x02;
    write(compute, "pg_xact/0000", clog, new byte[8192]);
    write(rebuilt, "pg_xact/0000", clog);
    write(compute, "pg_multixact/offsets/0000", clog);
    write(rebuilt, "pg_multixact/offsets/0000", aborted);
    Files.createDirectories(compute.resolve("pg_twophase"));
    Files.createDirectories(rebuilt.resolve("pg_twophase"));
    Files.writeString(compute.resolve("pg_twophase/000002E5"), "state");
    Files.writeString(rebuilt.resolve("pg_twophase/000002E5"), "state");
    Files.writeString(rebuilt.resolve("pg_twophase/000002E6"), "state");
    DataDirComparison c = compare(NO_FACTS);
    assertThat(c.slruPagesCompared).isEqualTo(2);
    assertThat(c.zeroTailPages).isEqualTo(1);
    assertThat(c.mismatches)
        .extracting(DataDirComparison.Mismatch::file)
        .containsExactlyInAnyOrder("pg_multixact/offsets/0000", "pg_twophase/000002E6");
  }

  @Test
  void mapBitsMissingFromTheWalAreToleratedOnlyWhereTheImageLeftThemOut() throws IOException {
    byte[] theirs = emptyVmPage();
    ByteBuffer.wrap(theirs).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 0x500);
    theirs[24] = (byte) 0xFF;
    byte[] ours = emptyVmPage();
    ByteBuffer.wrap(ours).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 0x500);
    write(compute, "base/5/4000_vm", theirs);
    write(rebuilt, "base/5/4000_vm", ours);
    write(compute, "base/5/4001_vm", theirs);
    write(rebuilt, "base/5/4001_vm", ours);
    byte[] extraBit = ours.clone();
    extraBit[25] = 1; // a bit the compute does not have: never tolerated
    write(compute, "base/5/4002_vm", theirs);
    write(rebuilt, "base/5/4002_vm", extraBit);
    DataDirComparison c =
        compare(
            new DataDirComparison.Facts(Map.of(), Set.of("base/5/4000_vm#0", "base/5/4002_vm#0")));
    assertThat(c.vmBitsNotInWal).containsExactly("base/5/4000_vm block 0");
    assertThat(c.mismatches)
        .extracting(DataDirComparison.Mismatch::file)
        .containsExactlyInAnyOrder("base/5/4001_vm", "base/5/4002_vm");
  }
}
