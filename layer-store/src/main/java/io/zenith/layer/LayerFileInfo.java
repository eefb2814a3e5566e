package io.zenith.layer;

import io.zenith.wal.Lsn;

/**
 * One of a timeline's own layer files as its index registers it, for operators and for the checks
 * that the directory holds exactly the files the index names.
 *
 * @param fileName the file's name in the timeline's directory
 * @param kind delta or image
 * @param level 0 for a flushed delta layer, 1 for a compacted one (images: 1)
 * @param lsnFrom the start of its LSN range (exclusive for an image: the image is at {@code lsnTo})
 * @param lsnTo the end of its LSN range
 * @param size bytes on disk
 */
public record LayerFileInfo(
    String fileName, LayerFile.Kind kind, int level, Lsn lsnFrom, Lsn lsnTo, long size) {
  static LayerFileInfo of(LayerIndex.LayerInfo i) {
    return new LayerFileInfo(i.fileName(), i.kind(), i.level(), i.lsnFrom(), i.lsnTo(), i.size());
  }
}
