package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * A timeline's index object in remote storage ({@code index_part-<generation>}): the layer files
 * that make up its history up to {@code diskConsistentLsn}, each with its size and the CRC32C of
 * its whole content, and the timeline's metadata. Uploaded only after every file it names (ADR
 * 0023). Binary, big-endian:
 *
 * <pre>
 *  0 u32 magic 0x5A54495A ("ZTIZ")   4 u16 format version (2)   6 u16 0
 *  8 u32 generation   12 96B timeline metadata ({@link TimelineMetadata}, with its own CRC)
 * 108 u64 disk_consistent_lsn   116 u32 layer count
 * per layer: u16 name length, name (UTF-8), u64 size, u32 CRC32C of the file, u32 generation
 * u32 CRC32C of everything before
 * </pre>
 *
 * Changelog: version 1 (2026-12): first format. Version 2 (2026-12, ADR 0026): each layer's
 * generation (its object's suffix: a layer uploaded before a re-attach keeps the generation it was
 * uploaded under); a version 1 index is read with every layer in the index's generation, which is
 * what its writer used. Immutable.
 *
 * @param generation the attach generation of the pageserver that wrote it (its name's suffix)
 * @param layers in the order the timeline's index lists them (oldest first)
 */
public record RemoteIndex(
    int generation, TimelineMetadata metadata, Lsn diskConsistentLsn, List<Layer> layers) {

  static final int MAGIC = 0x5A54495A;
  static final int FORMAT_VERSION = 2;

  /** The generation of every object until the control plane issues them (issue 12 point 3). */
  public static final int DEFAULT_GENERATION = 1;

  /** The index object's name before its generation suffix. */
  static final String INDEX_NAME = "index_part";

  /**
   * One layer file: its local name, bytes, the CRC32C of all its bytes, and the generation its
   * object's name carries ({@link #layerKey}).
   */
  public record Layer(String fileName, long size, int crc32c, int generation) {
    /** The name of its object in the timeline's prefix. */
    public String objectName() {
      return fileName + suffix(generation);
    }
  }

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

  /**
   * The key of the timeline's index that a pageserver attached with {@code generation} continues
   * from: its own, or else the one of the highest older generation (an index of a newer one belongs
   * to a pageserver this one must not follow). Empty if the timeline has none.
   */
  public static Optional<RemoteKey> latestIndexKey(
      RemoteStorage storage,
      TenantId tenant,
      TimelineId timeline,
      int generation,
      Duration timeout) {
    String prefix = timelinePrefix(tenant, timeline).path() + "/" + INDEX_NAME + "-";
    List<RemoteObject> all = storage.list(prefix).collectList().block(timeout);
    RemoteKey best = null;
    int bestGeneration = 0;
    for (RemoteObject o : all == null ? List.<RemoteObject>of() : all) {
      String g = o.key().name().substring(INDEX_NAME.length() + 1);
      if (g.length() != 8) {
        continue; // not one of ours
      }
      int n;
      try {
        n = HexFormat.fromHexDigits(g);
      } catch (IllegalArgumentException e) {
        continue;
      }
      if (n <= generation && n > bestGeneration) {
        best = o.key();
        bestGeneration = n;
      }
    }
    return Optional.ofNullable(best);
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
      size += 2 + n.length + 16;
    }
    ByteBuffer b = ByteBuffer.allocate(size);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0).putInt(generation);
    b.put(metadata.toBytes()).putLong(diskConsistentLsn.value()).putInt(layers.size());
    for (int i = 0; i < layers.size(); i++) {
      b.putShort((short) names.get(i).length).put(names.get(i));
      Layer l = layers.get(i);
      b.putLong(l.size()).putInt(l.crc32c()).putInt(l.generation());
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
    boolean v1 = b.getShort(4) == 1;
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
        String name = new String(n, StandardCharsets.UTF_8);
        long size = b.getLong();
        int crc = b.getInt();
        layers.add(new Layer(name, size, crc, v1 ? generation : b.getInt()));
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
