package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

/**
 * One durable list of the remote deletion queue ({@code deletion/<sequence>.list}, {@link
 * RemoteDeletionQueue}): the objects, or whole tenant or timeline prefixes, to delete from remote
 * storage. Binary, big-endian:
 *
 * <pre>
 *  0 u32 magic 0x5A54444C ("ZTDL")   4 u16 format version (1)   6 u16 0
 *  8 u64 sequence (the file's name)  16 u32 generation   20 u32 entry count
 * per entry: u8 kind (1 object, 2 prefix), u16 length, the key or prefix (UTF-8)
 * u32 CRC32C of everything before
 * </pre>
 *
 * An object is a layer or index object of one timeline ({@code tenants/<t>/timelines/<tl>/<name>});
 * a prefix is a whole timeline ({@code tenants/<t>/timelines/<tl>/}) or tenant ({@code
 * tenants/<t>/}). Nothing else parses: a list can never name an object outside a tenant, nor the
 * empty prefix. Changelog: version 1 (2026-12): first format. Immutable.
 *
 * @param sequence the list's place in the queue; equal to its file's name
 * @param generation the generation of its tenant on the pageserver that wrote it (a list holds one
 *     tenant's entries): executed only while the control plane has issued no newer one (ADR 0026)
 */
record DeletionList(long sequence, int generation, List<DeletionList.Entry> entries) {
  static final int MAGIC = 0x5A54444C;
  static final int FORMAT_VERSION = 1;
  private static final int KIND_OBJECT = 1;
  private static final int KIND_PREFIX = 2;
  private static final String ID = "([0-9a-f]{32})";
  private static final Pattern OBJECT =
      Pattern.compile("tenants/" + ID + "/timelines/" + ID + "/([^/]+)");
  private static final Pattern PREFIX =
      Pattern.compile("tenants/" + ID + "/(?:timelines/" + ID + "/)?");

  /**
   * What one entry deletes; every entry belongs to one tenant and, but for a tenant's, timeline.
   */
  sealed interface Entry {
    TenantId tenant();

    Optional<TimelineId> timeline();

    /** The key, or the listing prefix. */
    String path();
  }

  /** One object of a timeline. */
  record ObjectEntry(TenantId tenant, TimelineId id, String name) implements Entry {
    ObjectEntry {
      RemoteIndex.timelinePrefix(tenant, id).resolve(name); // checks the name as a key segment
      if (name.contains("/")) {
        throw new IllegalArgumentException("bad object name " + name);
      }
    }

    static ObjectEntry of(RemoteKey key) {
      Matcher m = OBJECT.matcher(key.path());
      if (!m.matches()) {
        throw new IllegalArgumentException("not a timeline's object: " + key);
      }
      return new ObjectEntry(TenantId.parse(m.group(1)), TimelineId.parse(m.group(2)), m.group(3));
    }

    RemoteKey key() {
      return RemoteIndex.timelinePrefix(tenant, id).resolve(name);
    }

    @Override
    public Optional<TimelineId> timeline() {
      return Optional.of(id);
    }

    @Override
    public String path() {
      return key().path();
    }
  }

  /** Every object of a timeline (when {@code timeline} is present) or of a whole tenant. */
  record PrefixEntry(TenantId tenant, Optional<TimelineId> timeline) implements Entry {
    @Override
    public String path() {
      return timeline
          .map(tl -> RemoteIndex.timelinePrefix(tenant, tl).path() + "/")
          .orElse("tenants/" + tenant + "/");
    }
  }

  DeletionList {
    entries = List.copyOf(entries);
  }

  byte[] toBytes() {
    List<byte[]> paths = new ArrayList<>();
    int size = 24 + 4;
    for (Entry e : entries) {
      byte[] p = e.path().getBytes(StandardCharsets.UTF_8);
      paths.add(p);
      size += 3 + p.length;
    }
    ByteBuffer b = ByteBuffer.allocate(size);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0);
    b.putLong(sequence).putInt(generation).putInt(entries.size());
    for (int i = 0; i < entries.size(); i++) {
      b.put((byte) (entries.get(i) instanceof ObjectEntry ? KIND_OBJECT : KIND_PREFIX));
      b.putShort((short) paths.get(i).length).put(paths.get(i));
    }
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    return b.array();
  }

  /**
   * Checks and decodes a list.
   *
   * @param where names the file in the error
   * @throws LayerStoreException CORRUPT_FILE naming {@code where} and what is wrong
   */
  static DeletionList fromBytes(byte[] a, String where) {
    ByteBuffer b = Framed.open(a, "deletion list", where, MAGIC, FORMAT_VERSION, 28);
    try {
      b.position(8);
      long sequence = b.getLong();
      int generation = b.getInt();
      int count = b.getInt();
      List<Entry> entries = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        int kind = b.get();
        byte[] p = new byte[Short.toUnsignedInt(b.getShort())];
        b.get(p);
        entries.add(entry(kind, new String(p, StandardCharsets.UTF_8), where));
      }
      if (b.position() != a.length - 4) {
        throw corrupt(where, (a.length - 4 - b.position()) + " bytes after the last entry");
      }
      return new DeletionList(sequence, generation, entries);
    } catch (BufferUnderflowException e) {
      throw corrupt(where, "truncated entry list");
    }
  }

  private static Entry entry(int kind, String path, String where) {
    if (kind == KIND_OBJECT) {
      try {
        return ObjectEntry.of(RemoteKey.of(path));
      } catch (IllegalArgumentException e) {
        throw corrupt(where, "bad object entry \"" + path + "\": " + e.getMessage());
      }
    }
    Matcher m = PREFIX.matcher(path);
    if (kind != KIND_PREFIX || !m.matches()) {
      throw corrupt(where, "bad entry of kind " + kind + ": \"" + path + "\"");
    }
    return new PrefixEntry(
        TenantId.parse(m.group(1)), Optional.ofNullable(m.group(2)).map(TimelineId::parse));
  }

  private static LayerStoreException corrupt(String where, String what) {
    return Framed.corrupt("deletion list", where, what);
  }
}
