package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * A version of a key's value. A permanent storage format (layer files keep it forever), encoded by
 * {@link #encode()} as:
 *
 * <pre>
 * u8  format version (1)
 * u8  kind: 1 image, 2 WAL record, 3 patch, 4 tombstone
 * ... kind-specific payload, big-endian:
 *   image:      the bytes (a page, or a small metadata value)
 *   WAL record: u8 will-init, u64 start LSN, the raw PostgreSQL record (header included);
 *               the record's end LSN is the version's LSN
 *   patch:      u8 flags (1 = initialize an all-zero page as an empty heap page first),
 *               u16 n, n × (u16 byte offset, u8 mask, u8 bits): byte = byte & ~mask | bits & mask
 *   tombstone:  nothing (the key does not exist from this version on)
 * </pre>
 *
 * Changelog: version 1 (2026-11): first format.
 *
 * <p>Images and will-init records are <i>bases</i>: reconstruction starts there and applies newer
 * WAL records and patches in LSN order. Immutable (arrays are not copied: don't modify them).
 */
public sealed interface Value {

  int FORMAT_VERSION = 1;

  /** Reconstruction can start at this version without looking at older ones. */
  boolean isBase();

  default boolean isTombstone() {
    return false;
  }

  /** A full value: an 8 KiB page, or a metadata value such as a relation size. */
  record Image(byte[] bytes) implements Value {
    @Override
    public boolean isBase() {
      return true;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Image i && Arrays.equals(bytes, i.bytes);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
      return "Image[" + bytes.length + " bytes]";
    }
  }

  /**
   * A PostgreSQL WAL record that PostgreSQL's redo applies to the page.
   *
   * @param willInit the record initializes the page (its previous content does not matter)
   * @param startLsn where the record starts (redo needs it; its end is the version's LSN)
   * @param record the raw record, header included
   */
  record WalRecord(boolean willInit, Lsn startLsn, byte[] record) implements Value {
    @Override
    public boolean isBase() {
      return willInit;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof WalRecord w
          && willInit == w.willInit
          && startLsn.equals(w.startLsn)
          && Arrays.equals(record, w.record);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(record) * 31 + startLsn.hashCode();
    }

    @Override
    public String toString() {
      return "WalRecord["
          + (willInit ? "will-init, " : "")
          + "start="
          + startLsn
          + ", "
          + record.length
          + " bytes]";
    }
  }

  /**
   * Byte-level changes applied by Zenith itself, for PostgreSQL changes that are not a record redo
   * can apply to the page: commit status bits in CLOG pages, multixact offsets and members,
   * visibility-map bits that heap records clear without referencing the map page.
   *
   * @param initPageIfNew an all-zero page is first initialized as an empty page (PageInit), as
   *     PostgreSQL does with visibility-map pages it extends
   * @param offsets byte offsets in the page
   * @param masks which bits of each byte change
   * @param bits the new bits
   */
  record Patch(boolean initPageIfNew, int[] offsets, byte[] masks, byte[] bits) implements Value {
    public Patch {
      if (offsets.length != masks.length || offsets.length != bits.length) {
        throw new IllegalArgumentException("patch arrays differ in length");
      }
    }

    @Override
    public boolean isBase() {
      return false;
    }

    /** Applies the patch to {@code page} in place. */
    public void applyTo(byte[] page) {
      for (int i = 0; i < offsets.length; i++) {
        int o = offsets[i];
        page[o] = (byte) ((page[o] & ~masks[i]) | (bits[i] & masks[i]));
      }
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Patch p
          && initPageIfNew == p.initPageIfNew
          && Arrays.equals(offsets, p.offsets)
          && Arrays.equals(masks, p.masks)
          && Arrays.equals(bits, p.bits);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(offsets) * 31 + Arrays.hashCode(bits);
    }

    @Override
    public String toString() {
      return "Patch[" + offsets.length + " bytes" + (initPageIfNew ? ", init-if-new" : "") + "]";
    }
  }

  /** The key does not exist from this version on (a dropped relation, a truncated segment). */
  record Tombstone() implements Value {
    @Override
    public boolean isBase() {
      return true;
    }

    @Override
    public boolean isTombstone() {
      return true;
    }
  }

  Tombstone TOMBSTONE = new Tombstone();

  int KIND_IMAGE = 1;
  int KIND_WAL_RECORD = 2;
  int KIND_PATCH = 3;
  int KIND_TOMBSTONE = 4;

  default byte[] encode() {
    return switch (this) {
      case Image i -> {
        byte[] out = new byte[2 + i.bytes().length];
        out[0] = FORMAT_VERSION;
        out[1] = KIND_IMAGE;
        System.arraycopy(i.bytes(), 0, out, 2, i.bytes().length);
        yield out;
      }
      case WalRecord w -> {
        ByteBuffer b = ByteBuffer.allocate(2 + 1 + 8 + w.record().length);
        b.put((byte) FORMAT_VERSION).put((byte) KIND_WAL_RECORD);
        b.put((byte) (w.willInit() ? 1 : 0)).putLong(w.startLsn().value()).put(w.record());
        yield b.array();
      }
      case Patch p -> {
        ByteBuffer b = ByteBuffer.allocate(2 + 1 + 2 + 4 * p.offsets().length);
        b.put((byte) FORMAT_VERSION).put((byte) KIND_PATCH);
        b.put((byte) (p.initPageIfNew() ? 1 : 0)).putShort((short) p.offsets().length);
        for (int i = 0; i < p.offsets().length; i++) {
          b.putShort((short) p.offsets()[i]).put(p.masks()[i]).put(p.bits()[i]);
        }
        yield b.array();
      }
      case Tombstone t -> new byte[] {FORMAT_VERSION, KIND_TOMBSTONE};
    };
  }

  /**
   * Decodes {@link #encode()}'s output.
   *
   * @throws IllegalArgumentException for an unknown format version or kind, or a malformed payload
   *     (callers turn it into a corruption error naming the file)
   */
  static Value decode(byte[] b) {
    if (b.length < 2) {
      throw new IllegalArgumentException("value of " + b.length + " bytes is too short");
    }
    if (b[0] != FORMAT_VERSION) {
      throw new IllegalArgumentException("unknown value format version " + (b[0] & 0xFF));
    }
    ByteBuffer buf = ByteBuffer.wrap(b, 2, b.length - 2);
    try {
      return switch (b[1]) {
        case KIND_IMAGE -> new Image(Arrays.copyOfRange(b, 2, b.length));
        case KIND_WAL_RECORD -> {
          boolean willInit = buf.get() != 0;
          Lsn start = Lsn.of(buf.getLong());
          byte[] rec = new byte[buf.remaining()];
          buf.get(rec);
          yield new WalRecord(willInit, start, rec);
        }
        case KIND_PATCH -> {
          boolean init = buf.get() != 0;
          int n = Short.toUnsignedInt(buf.getShort());
          if (buf.remaining() != 4 * n) {
            throw new IllegalArgumentException(
                "patch of " + n + " entries has " + buf.remaining() + " bytes");
          }
          int[] offsets = new int[n];
          byte[] masks = new byte[n];
          byte[] bits = new byte[n];
          for (int i = 0; i < n; i++) {
            offsets[i] = Short.toUnsignedInt(buf.getShort());
            masks[i] = buf.get();
            bits[i] = buf.get();
          }
          yield new Patch(init, offsets, masks, bits);
        }
        case KIND_TOMBSTONE -> {
          if (b.length != 2) {
            throw new IllegalArgumentException("tombstone with a payload");
          }
          yield TOMBSTONE;
        }
        default -> throw new IllegalArgumentException("unknown value kind " + b[1]);
      };
    } catch (java.nio.BufferUnderflowException e) {
      throw new IllegalArgumentException("value truncated", e);
    }
  }
}
