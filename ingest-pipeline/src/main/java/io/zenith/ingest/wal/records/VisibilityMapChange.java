package io.zenith.ingest.wal.records;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.RelTag;

/**
 * Visibility-map bits that replaying a heap record sets or clears for one heap block, with where
 * those bits live in the relation's {@code vm} fork ({@code access/heap/visibilitymap.c}).
 *
 * <p>Heap records that clear bits do not register the VM page as a block reference; redo derives
 * the VM page from the heap block, so a pageserver has to do the same. Each heap block has two bits
 * in the map: {@link #ALL_VISIBLE} at bit {@link #bitShift()} and {@link #ALL_FROZEN} just above
 * it. To apply a change to an 8 KiB VM page: {@code page[pageByteOffset()] |= mask()} for {@link
 * Action#SET}, {@code &= ~mask()} for {@link Action#CLEAR}.
 *
 * <p>Immutable and thread-safe.
 *
 * @param rel the heap relation (the VM is its {@code vm} fork)
 * @param heapBlock the heap block, an unsigned 32-bit number held in an int
 * @param action whether the bits are set or cleared
 * @param bits {@link #ALL_VISIBLE}, {@link #ALL_FROZEN} or both
 */
public record VisibilityMapChange(RelTag rel, int heapBlock, Action action, int bits) {

  /** {@code VISIBILITYMAP_ALL_VISIBLE}. */
  public static final int ALL_VISIBLE = 0x01;

  /** {@code VISIBILITYMAP_ALL_FROZEN}. */
  public static final int ALL_FROZEN = 0x02;

  /** {@code VISIBILITYMAP_VALID_BITS}. */
  public static final int VALID_BITS = 0x03;

  /** {@code BITS_PER_HEAPBLOCK}. */
  public static final int BITS_PER_HEAPBLOCK = 2;

  /** {@code HEAPBLOCKS_PER_BYTE}. */
  public static final int HEAPBLOCKS_PER_BYTE = 8 / BITS_PER_HEAPBLOCK;

  /**
   * Where the map starts in a VM page: {@code MAXALIGN(SizeOfPageHeaderData)}, the page header
   * being 24 bytes.
   */
  public static final int MAP_OFFSET = PageLayout.SIZE_OF_PAGE_HEADER;

  /** {@code MAPSIZE}: bytes of map per 8 KiB VM page. */
  public static final int MAPSIZE = PageLayout.BLCKSZ - MAP_OFFSET;

  /** {@code HEAPBLOCKS_PER_PAGE}: heap blocks covered by one VM page (32672). */
  public static final int HEAPBLOCKS_PER_PAGE = MAPSIZE * HEAPBLOCKS_PER_BYTE;

  /** Set or clear. */
  public enum Action {
    SET,
    CLEAR
  }

  public VisibilityMapChange {
    if (rel == null || action == null) {
      throw new IllegalArgumentException("rel and action are required");
    }
    if (bits == 0 || (bits & ~VALID_BITS) != 0) {
      throw new IllegalArgumentException("bits must be a non-empty subset of 0x03, got " + bits);
    }
  }

  /** {@code HEAPBLK_TO_MAPBLOCK}: the block of the {@code vm} fork holding the bits. */
  public int vmBlock() {
    return Integer.divideUnsigned(heapBlock, HEAPBLOCKS_PER_PAGE);
  }

  /** {@code HEAPBLK_TO_MAPBYTE}: the byte in the map (after the page header) holding the bits. */
  public int mapByte() {
    return Integer.remainderUnsigned(heapBlock, HEAPBLOCKS_PER_PAGE) / HEAPBLOCKS_PER_BYTE;
  }

  /** {@code HEAPBLK_TO_OFFSET}: the position of this heap block's lowest bit in that byte. */
  public int bitShift() {
    return Integer.remainderUnsigned(heapBlock, HEAPBLOCKS_PER_BYTE) * BITS_PER_HEAPBLOCK;
  }

  /** The byte's offset in the 8 KiB VM page. */
  public int pageByteOffset() {
    return MAP_OFFSET + mapByte();
  }

  /** The bits of that byte this change sets or clears. */
  public int mask() {
    return bits << bitShift();
  }

  static VisibilityMapChange clear(RelTag rel, int heapBlock, int bits) {
    return new VisibilityMapChange(rel, heapBlock, Action.CLEAR, bits);
  }

  static VisibilityMapChange set(RelTag rel, int heapBlock, int bits) {
    return new VisibilityMapChange(rel, heapBlock, Action.SET, bits);
  }

  @Override
  public String toString() {
    return action
        + " "
        + bitsName(bits)
        + " of "
        + rel
        + " blk "
        + Integer.toUnsignedString(heapBlock)
        + " (vm blk "
        + Integer.toUnsignedString(vmBlock())
        + " byte "
        + pageByteOffset()
        + " shift "
        + bitShift()
        + ")";
  }

  private static String bitsName(int bits) {
    return switch (bits) {
      case ALL_VISIBLE -> "ALL_VISIBLE";
      case ALL_FROZEN -> "ALL_FROZEN";
      default -> "ALL_VISIBLE|ALL_FROZEN";
    };
  }
}
