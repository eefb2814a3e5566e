package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * A tenant's names as the control plane keeps them in remote storage (ADR 0029), so that a
 * repository restored from remote storage alone gets its tenant and branch names back: the object
 * {@code tenants/<t>/names}, rewritten whole after every local change of {@code tenants.toml} or
 * the tenant's {@code branches.toml}.
 *
 * <pre>
 * u32 magic "ZTNM" | u32 version (1) | u32 flags (bit 0: the repository's first tenant)
 * u16 length + UTF-8 tenant name (0: unnamed)
 * u32 branch count, then per branch: u16 length + UTF-8 name | 16 bytes timeline id
 * u32 CRC32C of everything before it
 * </pre>
 *
 * Big-endian. Immutable. The format is the control plane's (names are its, not the pageserver's);
 * it lives here beside the other objects of a tenant's remote prefix ({@link RemoteGenerations},
 * {@link RemoteIndex}).
 *
 * @param tenantName the tenant's name, empty if it has none
 * @param first whether it is the repository's first tenant (the one commands use by default)
 */
public record RemoteNames(String tenantName, boolean first, Map<String, TimelineId> branches) {
  static final int MAGIC = 0x5A544E4D; // "ZTNM"
  static final int VERSION = 1;
  static final String OBJECT_NAME = "names";

  /** Bounds the object (and a corrupt count): 64 K branches of 63-byte names. */
  static final int MAX_BRANCHES = 65_536;

  public RemoteNames {
    branches = java.util.Collections.unmodifiableMap(new TreeMap<>(branches));
  }

  /** The tenant's names object. */
  public static RemoteKey key(TenantId tenant) {
    return RemoteKey.of("tenants/" + tenant + "/" + OBJECT_NAME);
  }

  public byte[] toBytes() {
    byte[] name = tenantName.getBytes(StandardCharsets.UTF_8);
    int size = 12 + 2 + name.length + 4 + 4;
    for (String b : branches.keySet()) {
      size += 2 + b.getBytes(StandardCharsets.UTF_8).length + 16;
    }
    ByteBuffer out = ByteBuffer.allocate(size);
    out.putInt(MAGIC).putInt(VERSION).putInt(first ? 1 : 0);
    putString(out, name);
    out.putInt(branches.size());
    branches.forEach(
        (b, tl) -> {
          putString(out, b.getBytes(StandardCharsets.UTF_8));
          out.put(tl.toBytes());
        });
    CRC32C crc = new CRC32C();
    crc.update(out.array(), 0, out.position());
    out.putInt((int) crc.getValue());
    return out.array();
  }

  private static void putString(ByteBuffer out, byte[] s) {
    if (s.length > 0xFFFF) {
      throw new IllegalArgumentException("name too long: " + s.length + " bytes");
    }
    out.putShort((short) s.length).put(s);
  }

  /**
   * Decodes an object written by {@link #toBytes}.
   *
   * @param where the object's key, for the message
   * @throws LayerStoreException CORRUPT_FILE naming {@code where} and what is wrong (magic,
   *     version, CRC, length, a name or id that does not parse)
   */
  public static RemoteNames fromBytes(byte[] a, String where) {
    if (a.length < 4 + 12 + 2 + 4) {
      throw corrupt(where + ": " + a.length + " bytes, too short for names");
    }
    ByteBuffer in = ByteBuffer.wrap(a);
    int magic = in.getInt();
    if (magic != MAGIC) {
      throw corrupt(where + ": bad magic 0x" + Integer.toHexString(magic) + ", not a names object");
    }
    int version = in.getInt();
    if (version != VERSION) {
      throw corrupt(where + ": version " + version + ", this zenith reads version " + VERSION);
    }
    CRC32C crc = new CRC32C();
    crc.update(a, 0, a.length - 4);
    int stored = ByteBuffer.wrap(a, a.length - 4, 4).getInt();
    if (stored != (int) crc.getValue()) {
      throw corrupt(
          where
              + ": CRC32C mismatch (stored "
              + Integer.toHexString(stored)
              + ", computed "
              + Integer.toHexString((int) crc.getValue())
              + ")");
    }
    try {
      int flags = in.getInt();
      String tenantName = getString(in, where);
      int count = in.getInt();
      if (count < 0 || count > MAX_BRANCHES) {
        throw corrupt(where + ": " + count + " branches");
      }
      Map<String, TimelineId> branches = new TreeMap<>();
      for (int i = 0; i < count; i++) {
        String b = getString(in, where);
        byte[] id = new byte[16];
        in.get(id);
        if (branches.put(b, TimelineId.fromBytes(id, 0)) != null) {
          throw corrupt(where + ": branch '" + b + "' named twice");
        }
      }
      if (in.position() != a.length - 4) {
        throw corrupt(
            where + ": " + (a.length - 4 - in.position()) + " bytes after the last branch");
      }
      return new RemoteNames(tenantName, (flags & 1) != 0, branches);
    } catch (BufferUnderflowException e) {
      throw corrupt(where + ": ends inside its entries");
    }
  }

  private static LayerStoreException corrupt(String message) {
    return new LayerStoreException(LayerStoreException.Kind.CORRUPT_FILE, message);
  }

  private static String getString(ByteBuffer in, String where) {
    int n = Short.toUnsignedInt(in.getShort());
    byte[] s = new byte[n];
    in.get(s);
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(s))
          .toString();
    } catch (CharacterCodingException e) {
      throw corrupt(where + ": a name is not UTF-8");
    }
  }
}
