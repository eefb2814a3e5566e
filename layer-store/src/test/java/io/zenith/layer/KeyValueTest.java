package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class KeyValueTest {

  @Test
  void keysOrderLikeTheirBytes() {
    Random r = new Random(1);
    List<Key> keys = new ArrayList<>();
    for (int i = 0; i < 2000; i++) {
      keys.add(
          new Key(
              r.nextInt(3),
              r.nextInt(),
              r.nextInt(3) - 1,
              r.nextInt(),
              r.nextInt(256),
              r.nextInt()));
    }
    for (Key a : keys.subList(0, 200)) {
      for (Key b : keys) {
        int byValue = Integer.signum(a.compareTo(b));
        int byBytes = Integer.signum(java.util.Arrays.compareUnsigned(a.toBytes(), b.toBytes()));
        assertThat(byValue).isEqualTo(byBytes);
      }
      assertThat(Key.readFrom(a.toBytes(), 0)).isEqualTo(a);
      assertThat(Key.parse(a.toString())).isEqualTo(a);
    }
  }

  @Test
  void nextKeyCarries() {
    assertThat(new Key(0, 1, 2, 3, 4, 5).next()).isEqualTo(new Key(0, 1, 2, 3, 4, 6));
    assertThat(new Key(0, 1, 2, 3, 4, -1).next()).isEqualTo(new Key(0, 1, 2, 3, 5, 0));
    assertThat(new Key(0, 1, 2, 3, 0xFF, -1).next()).isEqualTo(new Key(0, 1, 2, 4, 0, 0));
    assertThat(Key.MAX.next()).isNull();
    assertThatThrownBy(() -> new Key(256, 0, 0, 0, 0, 0))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void valuesRoundTrip() {
    List<Value> values =
        List.of(
            new Value.Image(new byte[] {1, 2, 3}),
            new Value.Image(new byte[8192]),
            new Value.WalRecord(true, Lsn.parse("1/2345678"), new byte[] {9, 8, 7, 6}),
            new Value.WalRecord(false, Lsn.of(8), new byte[24]),
            new Value.Patch(
                true,
                new int[] {0, 8191},
                new byte[] {(byte) 0xC0, 1},
                new byte[] {(byte) 0x40, 1}),
            Value.TOMBSTONE);
    for (Value v : values) {
      assertThat(Value.decode(v.encode())).isEqualTo(v);
    }
    assertThat(values)
        .extracting(Value::isBase)
        .containsExactly(true, true, true, false, false, true);
  }

  @Test
  void patchesChangeOnlyMaskedBits() {
    byte[] page = new byte[8192];
    page[10] = (byte) 0xFF;
    new Value.Patch(
            false,
            new int[] {10, 11},
            new byte[] {0x03, (byte) 0xF0},
            new byte[] {0x01, (byte) 0xA5})
        .applyTo(page);
    assertThat(page[10]).isEqualTo((byte) 0xFD);
    assertThat(page[11]).isEqualTo((byte) 0xA0);
  }

  @Test
  void unknownFormatsAreRejected() {
    assertThatThrownBy(() -> Value.decode(new byte[] {2, 1}))
        .hasMessageContaining("format version 2");
    assertThatThrownBy(() -> Value.decode(new byte[] {1, 9})).hasMessageContaining("kind 9");
    assertThatThrownBy(() -> Value.decode(new byte[] {1, 2, 0})).hasMessageContaining("truncated");
    assertThatThrownBy(() -> Value.decode(new byte[] {1, 3, 0, 0, 5}))
        .hasMessageContaining("patch");
    assertThatThrownBy(() -> Value.decode(new byte[] {1})).hasMessageContaining("too short");
  }
}
