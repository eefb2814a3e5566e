package io.zenith.layer;

import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The envelope of the layer store's small binary objects (timeline metadata, a remote index, a
 * deletion list): a 4-byte magic at offset 0, a 2-byte format version at offset 4, and in the last
 * 4 bytes the CRC32C of everything before them. Each object checks its own envelope here, before it
 * reads a field, so a damaged one is named the same way whatever it is. Stateless.
 */
final class Framed {
  private Framed() {}

  /**
   * {@code a} as a buffer once its envelope checks out.
   *
   * @param what the kind of object, for the error ("remote index")
   * @param where names the object or file in the error
   * @param version the newest format version; versions 1 to it are accepted (the caller reads the
   *     version at offset 4 when the layouts differ)
   * @param minSize the size below which {@code a} cannot be one
   * @throws LayerStoreException CORRUPT_FILE: "corrupt {@code what} {@code where}: " and what is
   *     wrong (size, magic, CRC, version: checked in that order)
   */
  static ByteBuffer open(byte[] a, String what, String where, int magic, int version, int minSize) {
    if (a.length < minSize) {
      throw corrupt(what, where, "size " + a.length + ", at least " + minSize + " expected");
    }
    ByteBuffer b = ByteBuffer.wrap(a);
    if (b.getInt(0) != magic) {
      throw corrupt(what, where, "bad magic");
    }
    CRC32C c = new CRC32C();
    c.update(a, 0, a.length - 4);
    if ((int) c.getValue() != b.getInt(a.length - 4)) {
      throw corrupt(what, where, "CRC mismatch");
    }
    int v = Short.toUnsignedInt(b.getShort(4));
    if (v < 1 || v > version) {
      throw corrupt(what, where, "unknown format version " + v);
    }
    return b;
  }

  /** CORRUPT_FILE: "corrupt {@code what} {@code where}: {@code why}". */
  static LayerStoreException corrupt(String what, String where, String why) {
    return new LayerStoreException(
        LayerStoreException.Kind.CORRUPT_FILE, "corrupt " + what + " " + where + ": " + why);
  }
}
