package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Attaching a tenant from remote storage onto a store that does not have it (ADR 0027): for each
 * timeline under {@code tenants/<t>/timelines/}, its index object of the highest generation not
 * above the attaching one; the timeline's metadata file written back from the index byte for byte;
 * each layer registered from its header, footer and index section, read by ranged GETs (no blob is
 * downloaded: {@link LayerStub}s stand in for the files, which {@link LayerDownloads} fetches on
 * first read); {@code disk_consistent_lsn} and {@code remote_consistent_lsn} from the index. The
 * WAL after it comes from the safekeepers once the caller starts the WAL receivers.
 *
 * <p>Crash-safe: everything is built in {@code <data>/attaching/<t>/} and its index entries
 * committed; the rename of that directory to {@code tenants/<t>} is the commit point. A restart
 * before it removes the staging directory and its index entries ({@link #cleanPending}): the attach
 * is retried from scratch. Stateless.
 */
public final class TenantAttach {
  private static final Logger log = LoggerFactory.getLogger(TenantAttach.class);

  /** Where attaches build tenants before they appear in {@code tenants/}. */
  static final String STAGING = "attaching";

  /**
   * One attached timeline.
   *
   * @param indexGeneration the generation of the index object it was attached from
   * @param layerBytes the bytes of its layer files, all in remote storage for now
   */
  public record Timeline(
      TimelineId id,
      TimelineId ancestor,
      Lsn diskConsistentLsn,
      int indexGeneration,
      int layers,
      long layerBytes) {}

  /** What an attach did. */
  public record Result(TenantId tenant, int generation, List<Timeline> timelines, long millis) {}

  private TenantAttach() {}

  /**
   * Attaches {@code tenant} at {@code generation} from {@code storage} onto {@code store}.
   *
   * @param callTimeout bound of each remote call
   * @throws LayerStoreException ALREADY_EXISTS if the store has the tenant (or is deleting or
   *     detaching it); UNKNOWN_TENANT if remote storage has no timeline index of it up to that
   *     generation; CORRUPT_FILE or IO naming the object otherwise (nothing is left behind)
   */
  public static Result attach(
      LayerStore store,
      RemoteStorage storage,
      TenantId tenant,
      int generation,
      Duration callTimeout) {
    long t0 = System.nanoTime();
    Path data = store.dataDir();
    Path target = data.resolve("tenants").resolve(tenant.toString());
    Path staging = data.resolve(STAGING).resolve(tenant.toString());
    synchronized (store) {
      if (store.tenants().contains(tenant)
          || Files.exists(target)
          || Files.exists(TenantDeletion.markedDir(target))
          || Files.exists(target.resolveSibling(tenant + TenantDeletion.DETACH_SUFFIX))) {
        throw new LayerStoreException(
            LayerStoreException.Kind.ALREADY_EXISTS,
            "tenant " + tenant + " is already on this pageserver (or being deleted or detached)");
      }
      try {
        Map<TimelineId, RemoteIndex> indexes = indexes(storage, tenant, generation, callTimeout);
        if (indexes.isEmpty()) {
          throw new LayerStoreException(
              LayerStoreException.Kind.UNKNOWN_TENANT,
              "remote storage "
                  + storage.describe()
                  + " has no timeline index of tenant "
                  + tenant
                  + " up to generation "
                  + generation);
        }
        removeStaging(store.index(), staging);
        DurableFiles.createDirectories(staging);
        // The tenant's generation (ADR 0026) arrives with it: no moment without one.
        DurableFiles.write(
            staging.resolve(TenantGenerations.FILE), TenantGenerations.toBytes(generation));
        List<Timeline> out = new ArrayList<>();
        List<Registration> registrations = new ArrayList<>();
        for (Map.Entry<TimelineId, RemoteIndex> e : indexes.entrySet()) {
          Path dir = staging.resolve("timelines").resolve(e.getKey().toString());
          DurableFiles.createDirectories(dir);
          out.add(
              stage(storage, tenant, e.getKey(), e.getValue(), dir, callTimeout, registrations));
        }
        for (Registration r : registrations) {
          store.index().registerLayer(tenant, r.timeline(), r.info(), r.entries());
        }
        for (Timeline t : out) {
          Lsn disk = t.diskConsistentLsn();
          store
              .index()
              .putState(tenant, t.id(), new LayerIndex.TimelineState(disk, Lsn.INVALID, disk));
        }
        DurableFiles.createDirectories(target.getParent());
        Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
        DurableFiles.fsyncDirectory(target.getParent());
        DurableFiles.fsyncDirectory(staging.getParent());
        store.loadTenant(tenant, false);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        log.info(
            "attached tenant {} at generation {}: {} timelines in {} ms",
            tenant,
            generation,
            out.size(),
            ms);
        return new Result(tenant, generation, out, ms);
      } catch (IOException | RocksDBException | RuntimeException e) {
        try {
          removeStaging(store.index(), staging);
        } catch (IOException | RocksDBException cleanup) {
          e.addSuppressed(cleanup);
        }
        if (e instanceof LayerStoreException l) {
          throw l;
        }
        throw new LayerStoreException(
            LayerStoreException.Kind.IO,
            "cannot attach tenant " + tenant + ": " + e.getMessage(),
            e);
      }
    }
  }

  private record Registration(
      TimelineId timeline, LayerIndex.LayerInfo info, List<LayerFile.IndexEntry> entries) {}

  /** Writes a timeline's metadata and stubs into {@code dir}; collects its layer registrations. */
  private static Timeline stage(
      RemoteStorage storage,
      TenantId tenant,
      TimelineId id,
      RemoteIndex idx,
      Path dir,
      Duration timeout,
      List<Registration> out)
      throws IOException {
    if (!idx.metadata().tenant().equals(tenant) || !idx.metadata().timeline().equals(id)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE,
          "the index of "
              + tenant
              + "/"
              + id
              + " holds the metadata of "
              + idx.metadata().tenant()
              + "/"
              + idx.metadata().timeline());
    }
    idx.metadata().write(dir);
    long bytes = 0;
    for (RemoteIndex.Layer l : idx.layers()) {
      int gen = generationOf(idx, l);
      RemoteKey key = RemoteIndex.layerKey(tenant, id, l.fileName(), gen);
      if (l.size() < LayerFile.HEADER_SIZE + LayerFile.FOOTER_SIZE) {
        throw new LayerStoreException(
            LayerStoreException.Kind.CORRUPT_FILE,
            "the index of " + tenant + "/" + id + " gives " + key + " " + l.size() + " bytes");
      }
      byte[] header = range(storage, key, 0, LayerFile.HEADER_SIZE, timeout);
      byte[] footer =
          range(storage, key, l.size() - LayerFile.FOOTER_SIZE, LayerFile.FOOTER_SIZE, timeout);
      LayerStub stub = new LayerStub(gen, l.size(), l.crc32c(), header, footer);
      Path path = dir.resolve(l.fileName());
      // Opened from the stub: header and footer are checked as for a local file, nothing fetched.
      try (LayerFile.Reader r =
          LayerFile.Reader.openRemote(
              path,
              stub,
              (p, s) -> {
                throw new IOException("an attach reads no blob");
              })) {
        LayerFile.Header h = r.header();
        String expected = TimelineFiles.layerFileName(h.layerId(), h.lsnFrom(), h.lsnTo());
        if (!h.tenant().equals(tenant)
            || !h.timeline().equals(id)
            || !expected.equals(l.fileName())) {
          throw new LayerStoreException(
              LayerStoreException.Kind.CORRUPT_FILE,
              "layer object " + key + " holds " + h.tenant() + "/" + h.timeline() + " " + expected);
        }
        List<LayerFile.IndexEntry> entries =
            r.readIndex(
                (offset, length) -> {
                  try {
                    return ByteBuffer.wrap(range(storage, key, offset, length, timeout));
                  } catch (IOException e) {
                    throw new LayerStoreException(LayerStoreException.Kind.IO, e.getMessage(), e);
                  }
                });
        stub.write(path);
        out.add(new Registration(id, LayerIndex.LayerInfo.of(r, l.size()), entries));
      }
      bytes += l.size();
    }
    return new Timeline(
        id,
        idx.metadata().ancestor(),
        idx.diskConsistentLsn(),
        idx.generation(),
        idx.layers().size(),
        bytes);
  }

  /** The generation a layer's object name carries (ADR 0026: recorded per layer). */
  static int generationOf(RemoteIndex idx, RemoteIndex.Layer l) {
    return l.generation();
  }

  /** Exactly {@code length} bytes of {@code key} at {@code offset}. */
  private static byte[] range(
      RemoteStorage storage, RemoteKey key, long offset, int length, Duration timeout)
      throws IOException {
    ByteBuffer b = storage.read(key, offset, length).block(timeout);
    if (b == null || b.remaining() != length) {
      throw new IOException(
          "object "
              + key
              + " ends before "
              + (offset + length)
              + " (a ranged read of "
              + length
              + " bytes at "
              + offset
              + ")");
    }
    byte[] a = new byte[length];
    b.get(a);
    return a;
  }

  /**
   * The index object of each timeline of {@code tenant}: the one with the highest generation not
   * above {@code maxGeneration}. Timelines with none are left out (created, never indexed).
   */
  static Map<TimelineId, RemoteIndex> indexes(
      RemoteStorage storage, TenantId tenant, int maxGeneration, Duration timeout) {
    String prefix = "tenants/" + tenant + "/timelines/";
    List<RemoteObject> objects = storage.list(prefix).collectList().block(timeout);
    Map<TimelineId, Integer> best = new TreeMap<>();
    String marker = "/" + RemoteIndex.INDEX_NAME + "-";
    for (RemoteObject o : objects == null ? List.<RemoteObject>of() : objects) {
      String rest = o.key().path().substring(prefix.length());
      int slash = rest.indexOf('/');
      if (slash < 0 || !rest.startsWith(marker, slash)) {
        continue;
      }
      TimelineId tl;
      int gen;
      try {
        tl = TimelineId.parse(rest.substring(0, slash));
        String hex = rest.substring(slash + marker.length());
        if (hex.length() != 8) {
          continue;
        }
        gen = HexFormat.fromHexDigits(hex);
      } catch (IllegalArgumentException e) {
        continue;
      }
      if (Integer.compareUnsigned(gen, maxGeneration) <= 0) {
        best.merge(tl, gen, (a, b) -> Integer.compareUnsigned(a, b) >= 0 ? a : b);
      }
    }
    Map<TimelineId, RemoteIndex> out = new TreeMap<>();
    for (Map.Entry<TimelineId, Integer> e : best.entrySet()) {
      RemoteKey key = RemoteIndex.indexKey(tenant, e.getKey(), e.getValue());
      byte[] b = storage.get(key).block(timeout);
      out.put(e.getKey(), RemoteIndex.fromBytes(b, key.toString()));
    }
    return out;
  }

  /** Removes attaches a crash interrupted before their commit: call before loading tenants. */
  static void cleanPending(LayerIndex index, Path dataDir) throws IOException, RocksDBException {
    Path root = dataDir.resolve(STAGING);
    if (!Files.isDirectory(root)) {
      return;
    }
    try (Stream<Path> s = Files.list(root)) {
      for (Path p : s.sorted().toList()) {
        log.info("removing {}: an attach that a restart interrupted (it can be attached again)", p);
        removeStaging(index, p);
      }
    }
  }

  /** The staging directory of an attach and the index entries of its timelines; repeatable. */
  private static void removeStaging(LayerIndex index, Path staging)
      throws IOException, RocksDBException {
    if (!Files.exists(staging)) {
      return;
    }
    TenantId tenant;
    try {
      tenant = TenantId.parse(staging.getFileName().toString());
    } catch (IllegalArgumentException e) {
      tenant = null;
    }
    Path tls = staging.resolve("timelines");
    if (tenant != null && Files.isDirectory(tls)) {
      try (Stream<Path> s = Files.list(tls)) {
        for (Path d : s.toList()) {
          try {
            index.deleteTimeline(tenant, TimelineId.parse(d.getFileName().toString()));
          } catch (IllegalArgumentException e) {
            // not a timeline's directory: no index entries
          }
        }
      }
    }
    List<Path> all;
    try (Stream<Path> s = Files.walk(staging)) {
      all = s.sorted(Comparator.comparing(Path::getNameCount).reversed()).toList();
    }
    for (Path p : all) {
      Files.delete(p);
    }
    DurableFiles.fsyncDirectory(staging.getParent());
  }
}
