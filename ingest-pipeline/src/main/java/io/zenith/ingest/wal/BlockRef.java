package io.zenith.ingest.wal;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One block reference of a record ({@code DecodedBkpBlock}): the page it touches, its flags, its
 * optional full-page image and its optional block data. Views into the record's bytes; no copy.
 *
 * @param id block id in the record (0..32)
 * @param rel the relation
 * @param fork the fork
 * @param blockNumber the block, an unsigned 32-bit number held in an int
 * @param flags {@code fork_flags} (fork number in the low 4 bits, {@code BKPBLOCK_*} above)
 * @param image the full-page image, or null
 * @param dataOffset where the block data starts in the record
 * @param dataLength length of the block data (0 when none)
 * @param record the bytes of the whole record
 */
public record BlockRef(
    int id,
    RelTag rel,
    ForkNumber fork,
    int blockNumber,
    int flags,
    BlockImage image,
    int dataOffset,
    int dataLength,
    byte[] record) {

  public static final int FORK_MASK = 0x0F;
  public static final int HAS_IMAGE = 0x10;
  public static final int HAS_DATA = 0x20;
  public static final int WILL_INIT = 0x40;
  public static final int SAME_REL = 0x80;

  /** The page is re-initialized by the record; its previous contents do not matter. */
  public boolean willInit() {
    return (flags & WILL_INIT) != 0;
  }

  public boolean hasImage() {
    return image != null;
  }

  /** True when the record carries an image that redo restores instead of applying the change. */
  public boolean appliesImage() {
    return image != null && image.apply();
  }

  public boolean hasData() {
    return dataLength > 0;
  }

  /** The block data: a read-only little-endian view into the record. */
  public ByteBuffer data() {
    return ByteBuffer.wrap(record, dataOffset, dataLength)
        .slice()
        .asReadOnlyBuffer()
        .order(ByteOrder.LITTLE_ENDIAN);
  }

  public long blockNumberUnsigned() {
    return Integer.toUnsignedLong(blockNumber);
  }
}
