package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The attach generation of each tenant of a store (ADR 0026): the number the control plane issued
 * when it attached the tenant here, carried by the names of the objects this pageserver uploads and
 * checked against the control plane's record before it deletes any. Durable in {@code
 * tenants/<id>/generation}, binary, big-endian:
 *
 * <pre>
 *  0 u32 magic 0x5A544747 ("ZTGG")   4 u16 format version (1)   6 u16 0
 *  8 u32 generation (at least 1)    12 u32 CRC32C of bytes [0, 12)
 * </pre>
 *
 * A tenant without the file has {@link RemoteIndex#DEFAULT_GENERATION}: tenants created before
 * generations existed, and tenants of a pageserver without remote storage. Changelog: version 1
 * (2026-12): first format.
 *
 * <p>Thread-safe: reads are cached; changes are serialized and durable before they are seen.
 */
public final class TenantGenerations {
  private static final Logger log = LoggerFactory.getLogger(TenantGenerations.class);
  static final String FILE = "generation";
  static final int MAGIC = 0x5A544747;
  static final int FORMAT_VERSION = 1;
  static final int SIZE = 16;

  private final Path tenantsDir;
  private final Map<TenantId, Integer> cache = new ConcurrentHashMap<>();

  TenantGenerations(Path tenantsDir) {
    this.tenantsDir = tenantsDir;
  }

  /**
   * The tenant's generation (its file read once).
   *
   * @throws LayerStoreException CORRUPT_FILE if the file fails its checks, IO if it cannot be read
   */
  public int of(TenantId tenant) {
    Integer g = cache.get(tenant);
    return g != null
        ? g
        : cache.computeIfAbsent(tenant, t -> read(tenantsDir.resolve(t.toString())));
  }

  /**
   * Raises the tenant's generation to {@code generation}, durably (a re-attach here by the control
   * plane); the same generation again changes nothing.
   *
   * @throws LayerStoreException STALE_GENERATION if it is lower than the tenant's (an older
   *     attachment must never come back), IO if the write fails
   */
  public synchronized void raise(TenantId tenant, int generation) {
    int now = of(tenant);
    if (generation < now) {
      throw new LayerStoreException(
          LayerStoreException.Kind.STALE_GENERATION,
          "generation "
              + generation
              + " of tenant "
              + tenant
              + " is older than its generation "
              + now
              + " on this pageserver");
    }
    if (generation > now) {
      write(tenant, tenantsDir.resolve(tenant.toString()), generation);
    }
  }

  /** Writes the generation of a tenant whose directory is being created (the store's lock held). */
  synchronized void write(TenantId tenant, Path tenantDir, int generation) {
    check(generation);
    try {
      DurableFiles.write(tenantDir.resolve(FILE), toBytes(generation));
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot write the generation of tenant " + tenant + ": " + e.getMessage(),
          e);
    }
    cache.put(tenant, generation);
  }

  /** Drops a deleted (or detached) tenant's cached generation. */
  void forget(TenantId tenant) {
    cache.remove(tenant);
  }

  /**
   * The generation recorded in {@code tenantDir} (also a tenant directory being deleted).
   *
   * @throws LayerStoreException CORRUPT_FILE, IO
   */
  static int read(Path tenantDir) {
    Path f = tenantDir.resolve(FILE);
    byte[] a;
    try {
      a = Files.readAllBytes(f);
    } catch (NoSuchFileException e) {
      return RemoteIndex.DEFAULT_GENERATION;
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot read " + f + ": " + e.getMessage(), e);
    }
    ByteBuffer b = Framed.open(a, "generation file", f.toString(), MAGIC, FORMAT_VERSION, SIZE);
    if (a.length != SIZE) {
      throw Framed.corrupt("generation file", f.toString(), "size " + a.length + ", not " + SIZE);
    }
    int g = b.getInt(8);
    if (g < 1) {
      throw Framed.corrupt("generation file", f.toString(), "generation " + g);
    }
    return g;
  }

  /**
   * {@link #read}, or {@link RemoteIndex#DEFAULT_GENERATION} with a warning if the file is damaged
   * (a deletion list of a wrong generation is refused by the check, never executed wrongly).
   */
  static int readOrDefault(Path tenantDir) {
    try {
      return read(tenantDir);
    } catch (LayerStoreException e) {
      log.warn("{}; taking generation {}", e.getMessage(), RemoteIndex.DEFAULT_GENERATION);
      return RemoteIndex.DEFAULT_GENERATION;
    }
  }

  static byte[] toBytes(int generation) {
    ByteBuffer b = ByteBuffer.allocate(SIZE);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0).putInt(generation);
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, 12);
    return b.putInt((int) c.getValue()).array();
  }

  static void check(int generation) {
    if (generation < 1) {
      throw new IllegalArgumentException("a generation is at least 1, not " + generation);
    }
  }
}
