package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * RocksDB's write-ahead log stays bounded although the small column families (layer registry,
 * timeline states) never fill a memtable: {@link LayerIndex#MAX_WAL_BYTES} makes RocksDB flush
 * them. Here with a cap of 1 MiB and 16 MiB of layer commits.
 */
class LayerIndexWalTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TL = TimelineId.parse("11111111111111111111111111111111");

  @TempDir Path dir;

  @Test
  void theWriteAheadLogStaysNearItsCapWhileLayersAreCommitted() throws Exception {
    long cap = 1L << 20;
    try (LayerIndex index = LayerIndex.open(dir, 8L << 20, cap)) {
      long lsn = 0x0100_0000L;
      long written = 0;
      long maxLog = 0;
      for (int layer = 1; written < (16L << 20); layer++) {
        List<LayerFile.IndexEntry> entries = new ArrayList<>();
        for (int i = 0; i < 2000; i++) {
          entries.add(
              new LayerFile.IndexEntry(
                  new Key(0, 1663, 5, 16384 + layer, 0, i),
                  Lsn.of(lsn + i * 8L),
                  i * 100L,
                  100,
                  0));
        }
        Lsn to = Lsn.of(lsn + 2000 * 8L);
        LayerIndex.LayerInfo info =
            new LayerIndex.LayerInfo(
                layer, LayerFile.Kind.DELTA, Lsn.of(lsn), to, 200_000, "l" + layer, 0);
        index.commitLayer(
            TENANT, TL, info, entries, new LayerIndex.TimelineState(to, Lsn.of(lsn), Lsn.INVALID));
        lsn = to.value();
        written += 2000L * (Key.SIZE + 8 + 20);
        maxLog = Math.max(maxLog, logBytes());
      }
      // RocksDB flushes in the background: the logs it no longer needs go once it has. Without
      // the cap they are never released (30 MiB of them for these 16 MiB of writes).
      long settled = logBytes();
      for (int i = 0; i < 100 && settled > 4L << 20; i++) {
        Thread.sleep(100);
        settled = logBytes();
      }
      assertThat(settled)
          .as(
              "RocksDB write-ahead log bytes after %s bytes of index writes (at most %s on the way)",
              written, maxLog)
          .isLessThanOrEqualTo(4L << 20);
    }
  }

  private long logBytes() throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      long sum = 0;
      for (Path p : s.filter(p -> p.getFileName().toString().matches("\\d+\\.log")).toList()) {
        try {
          sum += Files.size(p);
        } catch (java.nio.file.NoSuchFileException e) {
          // deleted between the listing and the look
        }
      }
      return sum;
    }
  }
}
