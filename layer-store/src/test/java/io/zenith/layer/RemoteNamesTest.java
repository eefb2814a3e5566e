package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Map;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** The names object in remote storage (ADR 0029): round trip and every check of its decoder. */
class RemoteNamesTest {
  private static final TimelineId MAIN = TimelineId.parse("5f1d0c2e9a7b4e0f8c3d2b1a09e8f7d6");
  private static final TimelineId B2 = TimelineId.parse("00000000000000000000000000000abc");
  private static final RemoteNames NAMES =
      new RemoteNames("analytics", true, Map.of("main", MAIN, "b2.x-ü", B2));

  @Test
  void roundTrip() {
    assertThat(RemoteNames.fromBytes(NAMES.toBytes(), "k")).isEqualTo(NAMES);
    RemoteNames unnamed = new RemoteNames("", false, Map.of());
    assertThat(RemoteNames.fromBytes(unnamed.toBytes(), "k")).isEqualTo(unnamed);
  }

  @Test
  void keyIsBesideTheTenantsTimelines() {
    TenantId t = TenantId.parse("0123456789abcdef0123456789abcdef");
    assertThat(RemoteNames.key(t).path()).isEqualTo("tenants/" + t + "/names");
  }

  @Test
  void everyFlippedByteIsRefusedWithTheKeyInTheMessage() {
    byte[] good = NAMES.toBytes();
    for (int i = 0; i < good.length; i++) {
      byte[] bad = good.clone();
      bad[i] ^= 0x01;
      assertThatThrownBy(() -> RemoteNames.fromBytes(bad, "tenants/x/names"))
          .as("byte %d flipped", i)
          .isInstanceOf(LayerStoreException.class)
          .hasMessageStartingWith("tenants/x/names: ");
    }
  }

  @Test
  void truncatedMagicVersionAndCrcAreNamed() {
    byte[] good = NAMES.toBytes();
    assertThatThrownBy(() -> RemoteNames.fromBytes(Arrays.copyOf(good, 10), "k"))
        .hasMessageContaining("too short");
    assertThatThrownBy(() -> RemoteNames.fromBytes(Arrays.copyOf(good, good.length - 3), "k"))
        .hasMessageContaining("CRC32C mismatch");
    byte[] magic = withCrc(good, 0, 0x12345678);
    assertThatThrownBy(() -> RemoteNames.fromBytes(magic, "k")).hasMessageContaining("bad magic");
    byte[] version = withCrc(good, 4, 2);
    assertThatThrownBy(() -> RemoteNames.fromBytes(version, "k")).hasMessageContaining("version 2");
    // a count past the end, with a valid CRC: the entries are checked, not trusted
    int countAt = 12 + 2 + "analytics".length();
    byte[] count = withCrc(good, countAt, 3);
    assertThatThrownBy(() -> RemoteNames.fromBytes(count, "k"))
        .hasMessageContaining("ends inside its entries");
    byte[] huge = withCrc(good, countAt, Integer.MAX_VALUE);
    assertThatThrownBy(() -> RemoteNames.fromBytes(huge, "k")).hasMessageContaining("branches");
  }

  /** {@code a} with the int at {@code at} replaced and its CRC32C made right again. */
  private static byte[] withCrc(byte[] a, int at, int value) {
    byte[] b = a.clone();
    ByteBuffer.wrap(b).putInt(at, value);
    CRC32C crc = new CRC32C();
    crc.update(b, 0, b.length - 4);
    ByteBuffer.wrap(b).putInt(b.length - 4, (int) crc.getValue());
    return b;
  }
}
