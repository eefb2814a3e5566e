package io.zenith.page.fuse;

import io.zenith.wal.LogContext;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.EnumSet;
import java.util.Set;
import org.cryptomator.jfuse.api.DirFiller;
import org.cryptomator.jfuse.api.Errno;
import org.cryptomator.jfuse.api.FileInfo;
import org.cryptomator.jfuse.api.FuseConfig;
import org.cryptomator.jfuse.api.FuseConnInfo;
import org.cryptomator.jfuse.api.FuseOperations;
import org.cryptomator.jfuse.api.Stat;
import org.cryptomator.jfuse.api.Statvfs;
import org.cryptomator.jfuse.api.TimeSpec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * libfuse's high-level callbacks over a {@link LazyTree}: paths in, errno out. An {@link
 * IOException} (the pageserver unreachable or too slow, an overlay file that cannot be written) is
 * EIO, logged at WARN; refusals are their errno. Files are {@code 0600} and directories {@code
 * 0700}, owned by the compute's user: with {@code default_permissions} the kernel checks access, so
 * no callback does.
 *
 * <p>Thread-safe: libfuse calls it from its worker threads at once.
 */
final class LazyFuseOperations implements FuseOperations {
  private static final Logger log = LoggerFactory.getLogger(LazyFuseOperations.class);

  /** Largest read and write the kernel is asked to send (a batch of 128 pages). */
  static final int MAX_IO = 1 << 20;

  private final LazyTree tree;
  private final Errno errno;
  private final int uid;
  private final int gid;
  private final TenantId tenant;
  private final TimelineId timeline;
  private final Path overlay;
  private final Instant mounted = Instant.now();

  LazyFuseOperations(LazyTree tree, Errno errno, LazyFsConfig config, Path overlay) {
    this.tree = tree;
    this.errno = errno;
    this.uid = config.uid();
    this.gid = config.gid();
    this.tenant = config.tenant();
    this.timeline = config.timeline();
    this.overlay = overlay;
  }

  @Override
  public Errno errno() {
    return errno;
  }

  @Override
  public Set<Operation> supportedOperations() {
    return EnumSet.of(
        Operation.INIT,
        Operation.GET_ATTR,
        Operation.OPEN_DIR,
        Operation.READ_DIR,
        Operation.RELEASE_DIR,
        Operation.OPEN,
        Operation.CREATE,
        Operation.READ,
        Operation.WRITE,
        Operation.TRUNCATE,
        Operation.FLUSH,
        Operation.FSYNC,
        Operation.FSYNCDIR,
        Operation.RELEASE,
        Operation.UNLINK,
        Operation.RENAME,
        Operation.MKDIR,
        Operation.RMDIR,
        Operation.STATFS,
        Operation.UTIMENS,
        Operation.CHMOD,
        Operation.CHOWN);
  }

  @Override
  @SuppressWarnings("try")
  public void init(FuseConnInfo conn, FuseConfig config) {
    // The writeback cache lets the kernel gather the compute's 8 KiB writes into large ones and
    // answer reads of written pages itself; we are the only writer, so its sizes are the truth.
    int want = conn.want();
    for (int cap :
        new int[] {
          FuseConnInfo.FUSE_CAP_WRITEBACK_CACHE,
          FuseConnInfo.FUSE_CAP_ASYNC_READ,
          FuseConnInfo.FUSE_CAP_PARALLEL_DIROPS
        }) {
      if ((conn.capable() & cap) != 0) {
        want |= cap;
      }
    }
    conn.setWant(want);
    conn.setMaxWrite(MAX_IO);
    conn.setMaxRead(MAX_IO); // must equal the max_read mount option, or libfuse ends the session
    conn.setMaxReadahead(MAX_IO);
    try (LogContext.Scope s = LogContext.scope(tenant, timeline)) {
      logInit(conn);
    }
  }

  private void logInit(FuseConnInfo conn) {
    log.info(
        "FUSE {}.{} mounted: writeback cache {}, max write {} B, max readahead {} B",
        conn.protoMajor(),
        conn.protoMinor(),
        (conn.want() & FuseConnInfo.FUSE_CAP_WRITEBACK_CACHE) != 0,
        conn.maxWrite(),
        conn.maxReadahead());
  }

  @Override
  public int getattr(String path, Stat stat, FileInfo fi) {
    return call(
        path,
        () -> {
          LazyTree.Node n = tree.lookup(path);
          stat.setUid(uid);
          stat.setGid(gid);
          switch (n) {
            case LazyTree.Dir d -> {
              stat.setMode(Stat.S_IFDIR | 0700);
              stat.setNLink((short) 2);
              stat.setSize(4096);
            }
            case LazyTree.File f -> {
              stat.setMode(Stat.S_IFREG | 0600);
              stat.setNLink((short) 1);
              stat.setSize(f.content().size());
            }
          }
          for (TimeSpec t : new TimeSpec[] {stat.aTime(), stat.mTime(), stat.cTime()}) {
            t.set(mounted);
          }
          return 0;
        });
  }

  @Override
  public int opendir(String path, FileInfo fi) {
    return call(path, () -> tree.lookup(path) instanceof LazyTree.Dir ? 0 : -errno.enotdir());
  }

  @Override
  public int readdir(String path, DirFiller filler, long offset, FileInfo fi, int flags) {
    return call(
        path,
        () -> {
          filler.fill(".");
          filler.fill("..");
          for (String name : tree.list(path)) {
            filler.fill(name);
          }
          return 0;
        });
  }

  @Override
  public int releasedir(String path, FileInfo fi) {
    return 0;
  }

  @Override
  public int open(String path, FileInfo fi) {
    return call(path, () -> file(path) != null ? 0 : -errno.eio());
  }

  @Override
  public int create(String path, int mode, FileInfo fi) {
    return call(
        path,
        () -> {
          tree.create(path);
          return 0;
        });
  }

  @Override
  public int read(String path, ByteBuffer buf, long size, long offset, FileInfo fi) {
    return call(path, () -> file(path).read(buf, (int) Math.min(size, buf.remaining()), offset));
  }

  @Override
  public int write(String path, ByteBuffer buf, long size, long offset, FileInfo fi) {
    return call(
        path,
        () -> {
          buf.limit(buf.position() + (int) Math.min(size, buf.remaining()));
          return file(path).write(buf, offset);
        });
  }

  @Override
  public int truncate(String path, long size, FileInfo fi) {
    return call(
        path,
        () -> {
          file(path).truncate(size);
          return 0;
        });
  }

  /**
   * Nothing to make durable: the overlay lives as long as the mount (ADR 0018). What the compute
   * wrote is durable in its WAL on the safekeepers; a compute that restarts after the agent is gone
   * starts from a new basebackup.
   */
  @Override
  public int fsync(String path, int datasync, FileInfo fi) {
    return 0;
  }

  @Override
  public int fsyncdir(String path, int datasync, FileInfo fi) {
    return 0;
  }

  @Override
  public int flush(String path, FileInfo fi) {
    return 0;
  }

  @Override
  public int release(String path, FileInfo fi) {
    return 0;
  }

  @Override
  public int unlink(String path) {
    return call(
        path,
        () -> {
          tree.unlink(path);
          return 0;
        });
  }

  @Override
  public int rename(String from, String to, int flags) {
    if ((flags & ~1) != 0) {
      return -errno.einval(); // RENAME_EXCHANGE and RENAME_WHITEOUT are not offered
    }
    return call(
        from,
        () -> {
          tree.rename(from, to, (flags & 1) != 0);
          return 0;
        });
  }

  @Override
  public int mkdir(String path, int mode) {
    return call(
        path,
        () -> {
          tree.mkdir(path);
          return 0;
        });
  }

  @Override
  public int rmdir(String path) {
    return call(
        path,
        () -> {
          tree.rmdir(path);
          return 0;
        });
  }

  @Override
  public int statfs(String path, Statvfs statvfs) {
    return call(
        path,
        () -> {
          FileStore store = Files.getFileStore(overlay);
          statvfs.setBsize(4096);
          statvfs.setFrsize(4096);
          statvfs.setBlocks(store.getTotalSpace() / 4096);
          statvfs.setBfree(store.getUnallocatedSpace() / 4096);
          statvfs.setBavail(store.getUsableSpace() / 4096);
          statvfs.setNameMax(255);
          return 0;
        });
  }

  /** Times are the mount's: PostgreSQL reads none of a relation file's. */
  @Override
  public int utimens(String path, TimeSpec atime, TimeSpec mtime, FileInfo fi) {
    return call(path, () -> tree.lookup(path) != null ? 0 : -errno.enoent());
  }

  /** Modes and owners are fixed (0600/0700, the compute's user): accepted without effect. */
  @Override
  public int chmod(String path, int mode, FileInfo fi) {
    return call(path, () -> tree.lookup(path) != null ? 0 : -errno.enoent());
  }

  @Override
  public int chown(String path, int uid, int gid, FileInfo fi) {
    return call(path, () -> tree.lookup(path) != null ? 0 : -errno.enoent());
  }

  private OverlayFile file(String path) throws IOException {
    if (!(tree.lookup(path) instanceof LazyTree.File f)) {
      throw new FsError(FsError.Kind.IS_DIR, path);
    }
    return f.content();
  }

  private interface Body {
    int run() throws IOException;
  }

  @SuppressWarnings("try")
  private int call(String path, Body body) {
    try {
      return body.run();
    } catch (FsError e) {
      return -switch (e.kind()) {
        case NOT_FOUND -> errno.enoent();
        case EXISTS -> errno.eexist();
        case NOT_DIR -> errno.enotdir();
        case IS_DIR -> errno.eisdir();
        case NOT_EMPTY -> errno.enotempty();
        case INVALID -> errno.einval();
      };
    } catch (IOException | RuntimeException e) {
      // libfuse's worker threads serve this timeline only while they run this callback
      try (LogContext.Scope s = LogContext.scope(tenant, timeline)) {
        log.warn("{}: EIO: {}", path, e.toString());
      }
      return -errno.eio();
    }
  }
}
