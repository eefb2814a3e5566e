package io.zenith.it.wal;

import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.WalStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/** Helpers over a directory of WAL segment files (16 MiB segments). Stateless. */
final class WalSegments {
  private WalSegments() {}

  static final int SEGMENT_SIZE = 16 * 1024 * 1024;

  /**
   * The run of consecutive segment files the directory starts with, as {@code pg_waldump -p} and
   * {@code zenith wal dump DIR} read it.
   */
  static List<Path> consecutive(Path dir) throws IOException {
    List<Path> all = WalSegmentFiles.listSegments(dir);
    List<Path> run = new ArrayList<>();
    WalSegmentName expected = null;
    for (Path p : all) {
      WalSegmentName name = name(p);
      if (expected != null && !name.equals(expected)) {
        break;
      }
      run.add(p);
      expected = name.next();
    }
    return run;
  }

  static WalSegmentName name(Path segment) {
    return WalSegmentName.parse(segment.getFileName().toString(), SEGMENT_SIZE).orElseThrow();
  }

  static String fileName(Lsn lsn) {
    return WalSegmentName.of(1, lsn, SEGMENT_SIZE).fileName(SEGMENT_SIZE);
  }

  /** Decodes every record of the directory's WAL through the library and keeps those that match. */
  static List<DecodedRecord> decode(Path dir, Predicate<DecodedRecord> keep) throws IOException {
    return decode(consecutive(dir), keep);
  }

  /** Decodes every record of the given segment files and keeps those that match. */
  static List<DecodedRecord> decode(List<Path> files, Predicate<DecodedRecord> keep)
      throws IOException {
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(files);
    WalRecordAssembler assembler =
        new WalRecordAssembler(
            seq.startLsn(), WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()));
    List<DecodedRecord> kept =
        WalStream.records(WalSegmentFiles.read(seq, seq.startLsn()), assembler)
            .map(RecordDecoder::decode)
            .filter(keep)
            .collectList()
            .block();
    return kept == null ? List.of() : kept;
  }
}
