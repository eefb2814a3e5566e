package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The byte layout of {@link LayerIndex}'s keys and values (documented there), in one place. Static
 * and stateless.
 */
final class IndexFormat {
  private IndexFormat() {}

  static final int VERSION_KEY_SIZE = 32 + Key.SIZE + 8;

  static byte[] timelinePrefix(TenantId t, TimelineId tl) {
    return ByteBuffer.allocate(32).put(t.toBytes()).put(tl.toBytes()).array();
  }

  static byte[] versionKey(TenantId t, TimelineId tl, Key key, Lsn lsn) {
    byte[] b = new byte[VERSION_KEY_SIZE];
    System.arraycopy(t.toBytes(), 0, b, 0, 16);
    System.arraycopy(tl.toBytes(), 0, b, 16, 16);
    key.writeTo(b, 32);
    ByteBuffer.wrap(b).putLong(32 + Key.SIZE, lsn.value());
    return b;
  }

  static byte[] encodeRef(LayerIndex.Ref r) {
    return ByteBuffer.allocate(21)
        .putLong(r.layerId())
        .putLong(r.offset())
        .putInt(r.length())
        .put((byte) r.flags())
        .array();
  }

  static LayerIndex.Ref decodeRef(byte[] v) {
    ByteBuffer b = ByteBuffer.wrap(v);
    return new LayerIndex.Ref(b.getLong(), b.getLong(), b.getInt(), b.get() & 0xFF);
  }

  static byte[] encodeState(LayerIndex.TimelineState s) {
    return ByteBuffer.allocate(25)
        .put((byte) 1)
        .putLong(s.diskConsistentLsn().value())
        .putLong(s.prevRecordLsn().value())
        .putLong(s.remoteConsistentLsn().value())
        .array();
  }

  static byte[] layerKey(TenantId t, TimelineId tl, long id) {
    return ByteBuffer.allocate(40).put(timelinePrefix(t, tl)).putLong(id).array();
  }

  static byte[] encodeLayer(LayerIndex.LayerInfo i) {
    byte[] name = i.fileName().getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(1 + 24 + 2 + name.length + 1)
        .put((byte) i.kind().code)
        .putLong(i.lsnFrom().value())
        .putLong(i.lsnTo().value())
        .putLong(i.size())
        .putShort((short) name.length)
        .put(name)
        .put((byte) i.level())
        .array();
  }

  static LayerIndex.LayerInfo decodeLayer(byte[] key, byte[] value) {
    long id = ByteBuffer.wrap(key).getLong(32);
    ByteBuffer v = ByteBuffer.wrap(value);
    LayerFile.Kind kind = LayerFile.Kind.of(v.get());
    Lsn from = Lsn.of(v.getLong());
    Lsn to = Lsn.of(v.getLong());
    long size = v.getLong();
    byte[] name = new byte[Short.toUnsignedInt(v.getShort())];
    v.get(name);
    int level = v.hasRemaining() ? v.get() & 0xFF : 0;
    return new LayerIndex.LayerInfo(
        id, kind, from, to, size, new String(name, StandardCharsets.UTF_8), level);
  }
}
