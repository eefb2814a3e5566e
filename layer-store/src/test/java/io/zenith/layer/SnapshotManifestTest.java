package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** The snapshot manifest's format: round trip, and each kind of damage named. */
class SnapshotManifestTest {
  private static final SnapshotManifest M =
      new SnapshotManifest(
          Lsn.parse("1/2345678"),
          Lsn.parse("1/2345600"),
          -7_000_000_000_000_000_001L, // above 2^63 as unsigned: system ids use all 64 bits
          15,
          TenantId.generate(),
          TimelineId.generate(),
          "main",
          Instant.parse("2026-12-07T17:00:00.123Z"),
          List.of(
              new SnapshotManifest.FileEntry("layers/000001.layer", 16_777_216L, 0xCAFEBABE),
              new SnapshotManifest.FileEntry("layers/000002.layer", 8192, 1)));

  @Test
  void roundTrips() {
    byte[] a = M.toBytes();
    assertThat(SnapshotManifest.fromBytes(a, "m")).isEqualTo(M);
    assertThat(M.bytes()).isEqualTo(16_777_216L + 8192);
    SnapshotManifest empty =
        new SnapshotManifest(
            M.lsn(),
            Lsn.INVALID,
            1,
            15,
            M.sourceTenant(),
            M.sourceTimeline(),
            "",
            M.created(),
            List.of());
    assertThat(SnapshotManifest.fromBytes(empty.toBytes(), "m")).isEqualTo(empty);
  }

  @Test
  void damageIsNamed() {
    byte[] a = M.toBytes();
    assertThat(message(Arrays.copyOf(a, 20)))
        .isEqualTo("corrupt snapshot manifest m: size 20, at least 86 expected");
    byte[] magic = a.clone();
    magic[0] = 'X';
    assertThat(message(magic)).isEqualTo("corrupt snapshot manifest m: bad magic");
    byte[] flipped = a.clone();
    flipped[40] ^= 1;
    assertThat(message(flipped)).isEqualTo("corrupt snapshot manifest m: CRC mismatch");
    byte[] version = a.clone();
    ByteBuffer.wrap(version).putShort(4, (short) 2);
    recrc(version);
    assertThat(message(version)).isEqualTo("corrupt snapshot manifest m: unknown format version 2");
    // a file count beyond the bytes, with a valid CRC
    byte[] count = a.clone();
    int at = 76 + 2 + 4; // after the branch name "main"
    ByteBuffer.wrap(count).putInt(at, 1_000_000);
    recrc(count);
    assertThat(message(count)).isEqualTo("corrupt snapshot manifest m: bad file count 1000000");
    // trailing bytes inside the CRC
    byte[] longer = Arrays.copyOf(a, a.length + 3);
    System.arraycopy(a, a.length - 4, longer, a.length - 1, 4);
    recrc(longer);
    assertThat(message(longer)).isEqualTo("corrupt snapshot manifest m: 3 bytes after the files");
  }

  @Test
  void aFileListedTwiceIsRefused() {
    SnapshotManifest.FileEntry f = new SnapshotManifest.FileEntry("layers/1", 1, 1);
    assertThatThrownBy(
            () ->
                new SnapshotManifest(
                    M.lsn(),
                    M.prevLsn(),
                    1,
                    15,
                    M.sourceTenant(),
                    M.sourceTimeline(),
                    "",
                    M.created(),
                    List.of(f, f)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("file layers/1 is listed twice");
  }

  private static void recrc(byte[] a) {
    CRC32C c = new CRC32C();
    c.update(a, 0, a.length - 4);
    ByteBuffer.wrap(a).putInt(a.length - 4, (int) c.getValue());
  }

  private static String message(byte[] a) {
    try {
      SnapshotManifest.fromBytes(a, "m");
    } catch (LayerStoreException e) {
      assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.CORRUPT_FILE);
      return e.getMessage();
    }
    throw new AssertionError("accepted");
  }
}
