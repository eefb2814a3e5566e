package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * A timeline's index object in remote storage ({@code index_part-<generation>}): the layer files
 * that make up its history up to {@code diskConsistentLsn}, each with its size and the CRC32C of
 * its whole content, and the timeline's metadata. Uploaded only after every file it names (ADR
 * 0023). Binary, big-endian:
 *
 * <pre>
 *  0 u32 magic 0x5A54495A ("ZTIZ")   4 u16 format version (1)   6 u16 0
 *  8 u32 generation   12 96B timeline metadata ({@link TimelineMetadata}, with its own CRC)
 * 108 u64 disk_consistent_lsn   116 u32 layer count
 * per layer: u16 name length, name (UTF-8), u64 size, u32 CRC32C of the file
 * u32 CRC32C of everything before
 * </pre>
 *
 * Changelog: version 1 (2026-12): first format. Immutable.
 *
 * @param generation the attach generation the object names carry (constant 1 until generations
 *     exist, issue 12 point 3)
 * @param layers in the order the timeline's index lists them (oldest first)
 */
public record RemoteIndex(
    int generation, TimelineMetadata metadata, Lsn diskConsistentLsn, List<Layer> layers) {

  static final int MAGIC = 0x5A54495A;
  static final int FORMAT_VERSION = 1;

  /** The generation of every object until the control plane issues them (issue 12 point 3). */
  public static final int DEFAULT_GENERATION = 1;

  /** The index object's name before its generation suffix. */
  static final String INDEX_NAME = "index_part";

  /** One layer file: its local name, bytes and the CRC32C of all its bytes. */
  public record Layer(String fileName, long size, int crc32c) {}

  public RemoteIndex {
    layers = List.copyOf(layers);
  }

  /** The prefix under which a timeline's objects live: {@code tenants/<t>/timelines/<tl>}. */
  public static RemoteKey timelinePrefix(TenantId tenant, TimelineId timeline) {
    return RemoteKey.of("tenants/" + tenant + "/timelines/" + timeline);
  }

  /** A layer file's object: its local name with the generation suffix. */
  public static RemoteKey layerKey(
      TenantId tenant, TimelineId timeline, String fileName, int generation) {
    return timelinePrefix(tenant, timeline).resolve(fileName + suffix(generation));
  }

  /** The timeline's index object. */
  public static RemoteKey indexKey(TenantId tenant, TimelineId timeline, int generation) {
    return timelinePrefix(tenant, timeline).resolve(INDEX_NAME + suffix(generation));
  }

  /** {@code -} and the generation as 8 lower-case hex digits, as Neon names its objects. */
  static String suffix(int generation) {
    return "-" + HexFormat.of().toHexDigits(generation);
  }

  public byte[] toBytes() {
    List<byte[]> names = new ArrayList<>();
    int size = 120 + 4;
    for (Layer l : layers) {
      byte[] n = l.fileName().getBytes(StandardCharsets.UTF_8);
      names.add(n);
      size += 2 + n.length + 12;
    }
    ByteBuffer b = ByteBuffer.allocate(size);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0).putInt(generation);
    b.put(metadata.toBytes()).putLong(diskConsistentLsn.value()).putInt(layers.size());
    for (int i = 0; i < layers.size(); i++) {
      b.putShort((short) names.get(i).length).put(names.get(i));
      b.putLong(layers.get(i).size()).putInt(layers.get(i).crc32c());
    }
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    return b.array();
  }

  /**
   * Checks and decodes an index object.
   *
   * @param where names the object in the error
   * @throws LayerStoreException CORRUPT_FILE naming {@code where} and what is wrong
   */
  public static RemoteIndex fromBytes(byte[] a, String where) {
    ByteBuffer b = Framed.open(a, "remote index", where, MAGIC, FORMAT_VERSION, 124);
    try {
      b.position(8);
      int generation = b.getInt();
      byte[] md = new byte[TimelineMetadata.SIZE];
      b.get(md);
      TimelineMetadata metadata = TimelineMetadata.fromBytes(md, where);
      Lsn disk = Lsn.of(b.getLong());
      int count = b.getInt();
      List<Layer> layers = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        byte[] n = new byte[Short.toUnsignedInt(b.getShort())];
        b.get(n);
        layers.add(new Layer(new String(n, StandardCharsets.UTF_8), b.getLong(), b.getInt()));
      }
      if (b.position() != a.length - 4) {
        throw corrupt(where, (a.length - 4 - b.position()) + " bytes after the last layer");
      }
      return new RemoteIndex(generation, metadata, disk, layers);
    } catch (BufferUnderflowException e) {
      throw corrupt(where, "truncated layer list");
    }
  }

  private static LayerStoreException corrupt(String where, String what) {
    return Framed.corrupt("remote index", where, what);
  }
}
