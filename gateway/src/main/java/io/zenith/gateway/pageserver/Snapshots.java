package io.zenith.gateway.pageserver;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.http.ApiException;
import io.zenith.layer.ImageSource;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.SnapshotLayers;
import io.zenith.layer.SnapshotManifest;
import io.zenith.layer.Timeline;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import io.zenith.wal.remote.RemoteStorageSettings;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Snapshots to share (ADR 0028), the pageserver's part: {@link #push} writes a timeline's content
 * at one LSN as image layer files straight to a directory or an S3 prefix, then its manifest (last:
 * a snapshot without one is incomplete); {@link #pull} downloads a snapshot into a staging
 * directory, checks every file against the manifest's sizes and CRC32Cs, and imports it as a new
 * root timeline. Staging lives under the data directory ({@value #STAGING}); leftovers of a crash
 * are deleted when the pageserver starts. Blocking (the API's blocking scheduler); thread-safe.
 */
final class Snapshots {
  private static final Logger log = LoggerFactory.getLogger(Snapshots.class);

  static final String STAGING = "snapshot-staging";

  /**
   * Keys per image layer file: 2048 pages are 16 MiB, an eighth of compaction's default images, so
   * that the push's staging space and a failed upload's repetition stay small (ADR 0028).
   */
  static final int KEYS_PER_FILE = 2048;

  /** Bound of one remote operation (an upload or download of one file, a listing). */
  private static final Duration REMOTE_TIMEOUT = Duration.ofMinutes(5);

  private final LayerStore store;
  private final ImageSource images;
  private final Path staging;

  Snapshots(LayerStore store, ImageSource images) {
    this.store = store;
    this.images = images;
    this.staging = store.dataDir().resolve(STAGING);
    // what a push or pull that a crash stopped left (nothing refers to it)
    deleteTree(staging);
  }

  /** Pushes a snapshot of {@code timeline} as the request says. */
  ApiModel.SnapshotPushed push(
      TenantId tenant, TimelineId timeline, ApiModel.SnapshotPushRequest r) {
    if (r.destination() == null) {
      throw ApiException.badRequest("field 'destination' is required");
    }
    Timeline t = store.timeline(tenant, timeline);
    Timeline.RecordPosition pos = t.position();
    Lsn lsn = r.lsn() == null ? pos.last() : lsn(r.lsn());
    if ((lsn.value() & 7) != 0) {
      // the new timeline's WAL starts there: as a branch point, a record boundary
      throw ApiException.badRequest(
          "cannot take a snapshot at "
              + lsn
              + ": not a record boundary (WAL records start 8-byte"
              + " aligned)");
    }
    Lsn prev = lsn.equals(pos.last()) ? pos.prev() : Lsn.INVALID;
    RemoteStorageSettings settings = settings(r.destination(), "destination");
    boolean created = settings instanceof RemoteStorageSettings.Local l && !Files.exists(l.root());
    try (RemoteStorage rs = RemoteStorage.open(settings)) {
      String where = rs.describe();
      if (Boolean.TRUE.equals(rs.list("").hasElements().block(REMOTE_TIMEOUT))) {
        throw new ApiException(
            409, "cannot push a snapshot to " + where + ": it is not empty (use a new location)");
      }
      List<SnapshotManifest.FileEntry> files = new ArrayList<>();
      List<RemoteKey> uploaded = new ArrayList<>();
      Path dir = stagingDir();
      try {
        SnapshotLayers.Exported e =
            SnapshotLayers.export(
                t,
                lsn,
                images,
                dir,
                KEYS_PER_FILE,
                (seq, f) -> {
                  RemoteKey key = RemoteKey.of("layers/" + f.getFileName());
                  long size = Files.size(f);
                  int crc = crc32c(f);
                  uploaded.add(key);
                  rs.upload(f, key).block(REMOTE_TIMEOUT);
                  files.add(new SnapshotManifest.FileEntry(key.path(), size, crc));
                  Files.delete(f);
                });
        SnapshotManifest m =
            new SnapshotManifest(
                lsn,
                prev,
                t.metadata().systemId(),
                t.metadata().pgVersion(),
                tenant,
                timeline,
                r.branch() == null ? "" : r.branch(),
                Instant.now(),
                files);
        rs.put(RemoteKey.of(SnapshotManifest.OBJECT_NAME), m.toBytes()).block(REMOTE_TIMEOUT);
        log.info(
            "pushed a snapshot of {}/{} at {} to {}: {} files, {} bytes, {} keys",
            tenant,
            timeline,
            lsn,
            where,
            files.size(),
            m.bytes(),
            e.keys());
        return new ApiModel.SnapshotPushed(
            tenant.toString(),
            timeline.toString(),
            lsn.toString(),
            files.size(),
            m.bytes(),
            e.keys(),
            Long.toUnsignedString(m.systemId()));
      } catch (IOException | RuntimeException e) {
        undoPush(rs, uploaded, e);
        if (created && settings instanceof RemoteStorageSettings.Local l) {
          deleteTree(l.root());
        }
        throw e instanceof IOException io
            ? new UncheckedIOException(
                "cannot push a snapshot to " + where + ": " + io.getMessage(), io)
            : (RuntimeException) e;
      } finally {
        deleteTree(dir);
      }
    }
  }

  /** Deletes what a failed push uploaded: no partial snapshot stays behind. */
  private static void undoPush(RemoteStorage rs, List<RemoteKey> uploaded, Exception cause) {
    try {
      rs.deleteAll(uploaded).block(REMOTE_TIMEOUT);
    } catch (RuntimeException d) {
      cause.addSuppressed(d);
    }
  }

  /**
   * Imports the snapshot the request names as a new root timeline; returns its id. Nothing of it
   * stays on any failure: no timeline, no staging file.
   */
  TimelineId pull(TenantId tenant, ApiModel.SnapshotPullRequest r) {
    if (r.newTimelineId() == null || r.source() == null) {
      throw ApiException.badRequest("new_timeline_id and source are required");
    }
    TimelineId id = HttpApi.timelineId(r.newTimelineId());
    store.timelines(tenant); // UNKNOWN_TENANT before any download
    if (store.findTimeline(tenant, id).isPresent()) {
      throw new ApiException(409, "timeline " + id + " already exists in tenant " + tenant);
    }
    RemoteStorageSettings settings = settings(r.source(), "source");
    if (settings instanceof RemoteStorageSettings.Local l && !Files.isDirectory(l.root())) {
      throw ApiException.badRequest("no snapshot at " + l.root() + ": no such directory");
    }
    try (RemoteStorage rs = RemoteStorage.open(settings)) {
      String where = rs.describe();
      byte[] bytes;
      try {
        bytes = rs.get(RemoteKey.of(SnapshotManifest.OBJECT_NAME)).block(REMOTE_TIMEOUT);
      } catch (RemoteStorageException e) {
        if (e.kind() == RemoteStorageException.Kind.NOT_FOUND) {
          throw ApiException.badRequest(
              "no snapshot at "
                  + where
                  + ": it has no manifest (an incomplete snapshot, or not a snapshot)");
        }
        throw e;
      }
      SnapshotManifest m;
      try {
        m = SnapshotManifest.fromBytes(bytes, "of " + where);
      } catch (LayerStoreException e) {
        throw ApiException.badRequest(e.getMessage());
      }
      if (m.pgVersion() != 15) {
        throw ApiException.badRequest(
            "the snapshot at " + where + " is of PostgreSQL " + m.pgVersion() + ", not 15");
      }
      Path dir = stagingDir();
      try {
        List<Path> files = new ArrayList<>();
        for (SnapshotManifest.FileEntry f : m.files()) {
          files.add(download(rs, where, f, dir.resolve(String.format("%06d", files.size() + 1))));
        }
        try {
          SnapshotLayers.importAsRoot(store, tenant, id, m, files);
        } catch (LayerStoreException e) {
          if (e.kind() == LayerStoreException.Kind.CORRUPT_FILE) {
            throw ApiException.badRequest("the snapshot at " + where + ": " + e.getMessage());
          }
          throw e;
        }
        log.info(
            "pulled the snapshot at {} ({} at {}) as {}/{}",
            where,
            m.sourceTimeline(),
            m.lsn(),
            tenant,
            id);
        return id;
      } finally {
        deleteTree(dir);
      }
    }
  }

  /** Downloads one file of a snapshot and checks it against the manifest. */
  private static Path download(
      RemoteStorage rs, String where, SnapshotManifest.FileEntry f, Path target) {
    RemoteKey key;
    try {
      key = RemoteKey.of(f.name());
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(
          "the snapshot at " + where + " names a bad file: " + e.getMessage());
    }
    try {
      rs.download(key, target).block(REMOTE_TIMEOUT);
      long size = Files.size(target);
      if (size != f.size()) {
        throw ApiException.badRequest(
            "snapshot file "
                + f.name()
                + " at "
                + where
                + " is corrupt: "
                + size
                + " bytes, the manifest says "
                + f.size());
      }
      int crc = crc32c(target);
      if (crc != f.crc32c()) {
        throw ApiException.badRequest(
            String.format(
                "snapshot file %s at %s is corrupt: CRC32C %08x, the manifest says %08x",
                f.name(), where, crc, f.crc32c()));
      }
      return target;
    } catch (RemoteStorageException e) {
      if (e.kind() == RemoteStorageException.Kind.NOT_FOUND) {
        throw ApiException.badRequest(
            "snapshot file " + f.name() + " is missing at " + where + " (an incomplete snapshot)");
      }
      throw e;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + target + ": " + e.getMessage(), e);
    }
  }

  private static Lsn lsn(String s) {
    try {
      return Lsn.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  /** The storage a location names; a bad one is a 400 naming the field. */
  private static RemoteStorageSettings settings(ApiModel.SnapshotLocation l, String field) {
    if (l.localPath() != null && !Path.of(l.localPath()).isAbsolute()) {
      throw ApiException.badRequest(field + ".local_path must be absolute: " + l.localPath());
    }
    try {
      return new RemoteStorageConfig(
              l.localPath(), l.bucket(), l.prefix(), l.endpoint(), l.region(), null)
          .settings(Path.of("/"));
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(field + ": " + e.getMessage());
    }
  }

  private Path stagingDir() {
    try {
      return Files.createDirectories(staging.resolve(UUID.randomUUID().toString()));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create " + staging + ": " + e.getMessage(), e);
    }
  }

  /** The CRC32C of a file's bytes. */
  static int crc32c(Path f) throws IOException {
    CRC32C c = new CRC32C();
    byte[] buf = new byte[1 << 16];
    try (InputStream in = Files.newInputStream(f)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        c.update(buf, 0, n);
      }
    }
    return (int) c.getValue();
  }

  private static void deleteTree(Path root) {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      log.warn("cannot delete {}: {}", root, e.toString());
    }
  }
}
