package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.testing.SyntheticWal;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WalSegmentFilesTest {

  @TempDir Path dir;

  /** Writes the synthetic WAL as segment files; returns them in order. */
  private List<Path> writeSegments(SyntheticWal wal) throws IOException {
    byte[] all = wal.bytesToSegmentEnd();
    int seg = wal.segmentSize();
    long first = wal.startLsn().segmentNumber(seg);
    for (int i = 0; i * seg < all.length; i++) {
      String name = new WalSegmentName(1, first + i).fileName(seg);
      Files.write(dir.resolve(name), Arrays.copyOfRange(all, i * seg, (i + 1) * seg));
    }
    return WalSegmentFiles.listSegments(dir);
  }

  private static SyntheticWal threeSegments() {
    SyntheticWal wal = SyntheticWal.small();
    while (wal.position().segmentNumber(wal.segmentSize()) < 3) {
      wal.append(10, 0, 1, 5000);
    }
    return wal;
  }

  private static List<WalRecord> read(WalSegmentFiles.Sequence seq) {
    return WalStream.records(
            WalSegmentFiles.read(seq, seq.startLsn()),
            seq.startLsn(),
            WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()))
        .collectList()
        .block();
  }

  @Test
  void readsConsecutiveSegmentsInOrder() throws IOException {
    SyntheticWal wal = threeSegments();
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(writeSegments(wal));
    assertThat(seq.files()).hasSize(3);
    assertThat(seq.segmentSize()).isEqualTo(wal.segmentSize());
    WalRecordAssemblerTest.assertSameRecords(read(seq), wal.records());
  }

  @Test
  void aShortFileEndsTheSequenceAtItsLastCompleteRecord() throws IOException {
    SyntheticWal wal = threeSegments();
    List<Path> files = writeSegments(wal);
    // Cut the middle segment inside a record, at an offset that is not a chunk boundary.
    Path middle = files.get(1);
    int cut = 300_001;
    Files.write(middle, Arrays.copyOf(Files.readAllBytes(middle), cut));
    List<WalRecord> got = read(WalSegmentFiles.sequence(files));
    Lsn cutAt = Lsn.of(2L * wal.segmentSize() + cut);
    List<SyntheticWal.Written> complete =
        wal.records().stream().filter(w -> !w.end().isAfter(cutAt)).toList();
    assertThat(complete).isNotEmpty();
    WalRecordAssemblerTest.assertSameRecords(got, complete);
  }

  @Test
  void aFileCutAtAChunkBoundaryAlsoEndsTheSequence() throws IOException {
    SyntheticWal wal = threeSegments();
    List<Path> files = writeSegments(wal);
    Path middle = files.get(1);
    Files.write(middle, Arrays.copyOf(Files.readAllBytes(middle), WalSegmentFiles.CHUNK_SIZE));
    Lsn cutAt = Lsn.of(2L * wal.segmentSize() + WalSegmentFiles.CHUNK_SIZE);
    assertThat(read(WalSegmentFiles.sequence(files)))
        .allMatch(r -> !r.end().isAfter(cutAt))
        .isNotEmpty();
  }

  @Test
  void gapsAndForeignFilesAreErrors() throws IOException {
    List<Path> files = writeSegments(threeSegments());
    assertThatThrownBy(() -> WalSegmentFiles.sequence(List.of(files.get(0), files.get(2))))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_SEGMENT_SEQUENCE));
    Path text =
        Files.writeString(dir.resolve("notes.txt"), "hello, this is not WAL at all, really not");
    assertThatThrownBy(() -> WalSegmentFiles.sequence(List.of(text)))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_PAGE_MAGIC));
  }
}
