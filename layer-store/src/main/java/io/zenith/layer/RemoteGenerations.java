package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The control plane's record of the generations it issued for a tenant (ADR 0026): one object per
 * generation, {@code tenants/<tenant>/generations/<generation as 8 hex digits>}, written before the
 * generation is given to a pageserver. The highest one is the tenant's current generation: a
 * pageserver attached with a lower one is stale and must neither delete objects nor advance the LSN
 * up to which remote storage holds the tenant's history. The record lives beside the objects it
 * protects, so every pageserver that can reach them can check it, with no service of its own.
 *
 * <p>A record is 24 bytes, big-endian: {@code u32} magic 0x5A544752 ("ZTGR"), {@code u16} version
 * (1), {@code u16} 0, {@code u32} generation, {@code u64} issue time (Unix milliseconds), {@code
 * u32} CRC32C of what precedes. The name alone decides; the content says when, for people.
 *
 * <p>Stateless; blocking (the control plane's commands and the uploads' own threads call it).
 */
public final class RemoteGenerations {
  private static final Logger log = LoggerFactory.getLogger(RemoteGenerations.class);
  static final int MAGIC = 0x5A544752;
  static final int FORMAT_VERSION = 1;
  static final int SIZE = 24;

  private RemoteGenerations() {}

  /** Where the records of {@code tenant} are: {@code tenants/<tenant>/generations/}. */
  static String prefix(TenantId tenant) {
    return "tenants/" + tenant + "/generations/";
  }

  /** The record of one generation. */
  public static RemoteKey key(TenantId tenant, int generation) {
    return RemoteKey.of(prefix(tenant) + HexFormat.of().toHexDigits(generation));
  }

  /**
   * The highest generation issued for {@code tenant}, 0 if none was (a tenant from before
   * generations, or none at all). Names that are not 8 hex digits are ignored with a warning.
   */
  public static int latest(RemoteStorage storage, TenantId tenant, Duration timeout) {
    List<RemoteObject> records = storage.list(prefix(tenant)).collectList().block(timeout);
    int max = 0;
    for (RemoteObject o : records == null ? List.<RemoteObject>of() : records) {
      String name = o.key().name();
      try {
        if (name.length() != 8) {
          throw new NumberFormatException("not 8 digits");
        }
        max = Math.max(max, HexFormat.fromHexDigits(name));
      } catch (IllegalArgumentException e) {
        log.warn(
            "ignoring {} among the generations of tenant {}: not a generation", o.key(), tenant);
      }
    }
    return max;
  }

  /**
   * Issues the tenant's next generation: one more than the highest recorded, and at least 2 when
   * the tenant has objects but no record (its objects carry {@link RemoteIndex#DEFAULT_GENERATION},
   * the generation of every tenant before they were issued). The record is written before this
   * returns; the caller then gives the generation to a pageserver. Issuing is not atomic: one
   * control plane issues a tenant's generations at a time.
   */
  public static int issue(RemoteStorage storage, TenantId tenant, Duration timeout) {
    int latest = latest(storage, tenant, timeout);
    int next;
    if (latest > 0) {
      next = Math.addExact(latest, 1);
    } else {
      Boolean any = storage.list("tenants/" + tenant + "/timelines/").hasElements().block(timeout);
      next = Boolean.TRUE.equals(any) ? RemoteIndex.DEFAULT_GENERATION + 1 : 1;
    }
    storage.put(key(tenant, next), record(next, System.currentTimeMillis())).block(timeout);
    return next;
  }

  /**
   * Whether {@code generation} is still the tenant's current one: no higher one was issued. A
   * tenant without records (from before generations) has only {@link
   * RemoteIndex#DEFAULT_GENERATION}'s objects, so every generation is current for it.
   */
  public static boolean current(
      RemoteStorage storage, TenantId tenant, int generation, Duration timeout) {
    return latest(storage, tenant, timeout) <= generation;
  }

  static byte[] record(int generation, long issuedAtMillis) {
    ByteBuffer b = ByteBuffer.allocate(SIZE);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0);
    b.putInt(generation).putLong(issuedAtMillis);
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, SIZE - 4);
    return b.putInt((int) c.getValue()).array();
  }
}
