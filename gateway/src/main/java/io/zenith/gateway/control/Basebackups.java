package io.zenith.gateway.control;

import io.zenith.pg.PgDistribution;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.LongConsumer;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.jspecify.annotations.Nullable;

/**
 * Fetches a basebackup from the pageserver's libpq endpoint ({@code basebackup <tenant> <timeline>
 * <lsn>}) with {@link PgConnection#copyOut} and extracts the tar as it arrives into a new data
 * directory, which it then hands to PostgreSQL's OS user with the modes PostgreSQL requires (0700
 * directories, 0600 files). Memory stays bounded: the copy is read only as fast as the files are
 * written (a few buffers of read-ahead). Blocking; stateless.
 */
public final class Basebackups {
  private Basebackups() {}

  /** How long the pageserver may send nothing before the fetch fails. */
  private static final Duration IDLE_TIMEOUT = Duration.ofMinutes(5);

  /** Largest write of a file's bytes: the largest CopyData message of a basebackup. */
  private static final int WRITE_BUFFER = 256 * 1024;

  /** What one fetch produced. */
  public record Result(long bytes, int files) {}

  /**
   * Fetches the basebackup at {@code lsn} into {@code target} (which must not exist; its parent
   * must). {@code progress} gets the bytes received so far, about every two seconds.
   *
   * @param token the password (a token with the tenant's or the admin scope, ADR 0016), or null
   * @throws ControlPlaneException when the pageserver is not running or refuses (unknown timeline,
   *     an LSN it cannot serve), or the stream breaks; {@code target} is then deleted
   */
  public static Result fetch(
      InetSocketAddress pageserverPg,
      @Nullable String token,
      TenantId tenant,
      TimelineId timeline,
      Lsn lsn,
      Path target,
      PgDistribution pg,
      boolean slim,
      LongConsumer progress) {
    PgConnectOptions options =
        PgConnectOptions.builder()
            .host(pageserverPg.getHostString())
            .port(pageserverPg.getPort())
            .user("postgres")
            .password(token)
            .database("postgres")
            .applicationName("zenith")
            .connectTimeout(Duration.ofSeconds(10))
            .build();
    PgConnection conn;
    try {
      conn = PgConnection.connect(options).block(Duration.ofSeconds(30));
    } catch (PgWireException e) {
      if (e.kind() == PgWireException.Kind.CONNECT) {
        throw new ControlPlaneException(
            "the pageserver is not running (nothing answers at libpq "
                + pageserverPg.getHostString()
                + ":"
                + pageserverPg.getPort()
                + "); start it with `zenith start`");
      }
      throw new ControlPlaneException("cannot connect to the pageserver: " + e.getMessage(), e);
    }
    if (conn == null) {
      throw new ControlPlaneException("cannot connect to the pageserver");
    }
    String command = "basebackup " + tenant + " " + timeline + " " + lsn + (slim ? " --slim" : "");
    boolean ok = false;
    try {
      Files.createDirectory(target);
      long[] bytes = {0};
      int files;
      try (Stream<ByteBuffer> chunks = conn.copyOut(command).timeout(IDLE_TIMEOUT).toStream(4)) {
        Iterator<ByteBuffer> it = chunks.iterator();
        TarArchiveInputStream tar =
            new TarArchiveInputStream(new ChunkInputStream(it, bytes, progress));
        files = extract(tar, target);
        // the tar ends before the response does: read on, so an error at the end is seen
        while (it.hasNext()) {
          bytes[0] += it.next().remaining();
        }
      }
      handToPostgres(target, pg);
      ok = true;
      return new Result(bytes[0], files);
    } catch (PgServerException e) {
      throw new ControlPlaneException(
          "the pageserver refused the basebackup: " + e.serverMessage(), e);
    } catch (PgWireException e) {
      throw new ControlPlaneException("the basebackup stream broke: " + e.getMessage(), e);
    } catch (IOException | UncheckedIOException e) {
      throw new ControlPlaneException(
          "cannot write the basebackup to " + target + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      if (e.getCause() instanceof java.util.concurrent.TimeoutException) {
        throw new ControlPlaneException(
            "the pageserver sent nothing for " + IDLE_TIMEOUT.toMinutes() + " minutes", e);
      }
      throw e;
    } finally {
      conn.close().block(Duration.ofSeconds(10));
      if (!ok) {
        deleteTree(target);
      }
    }
  }

  /** Extracts every entry under {@code target}; returns the number of files. */
  static int extract(TarArchiveInputStream tar, Path target) throws IOException {
    int files = 0;
    Path root = target.toAbsolutePath().normalize();
    // Directories made so far: asking again costs an exception per file (createDirectories).
    Set<Path> made = new HashSet<>(List.of(root));
    // One write per chunk-sized read, not per 16 KiB (Files.copy's buffer).
    byte[] buf = new byte[WRITE_BUFFER];
    TarArchiveEntry e;
    while ((e = tar.getNextEntry()) != null) {
      String name = e.getName();
      Path p = root.resolve(name).normalize();
      if (!p.startsWith(root) || Path.of(name).isAbsolute()) {
        throw new IOException("basebackup entry outside the data directory: " + name);
      }
      if (e.isDirectory()) {
        if (made.add(p)) {
          Files.createDirectories(p);
        }
      } else if (e.isFile()) {
        if (made.add(p.getParent())) {
          Files.createDirectories(p.getParent());
        }
        try (OutputStream out =
            Files.newOutputStream(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
          for (int n = tar.read(buf); n >= 0; n = tar.read(buf)) {
            out.write(buf, 0, n);
          }
        }
        files++;
      } else {
        throw new IOException("unexpected basebackup entry (not a file or directory): " + name);
      }
    }
    return files;
  }

  /** 0700 directories, 0600 files, owned by PostgreSQL's user. */
  static void handToPostgres(Path dataDir, PgDistribution pg) throws IOException {
    try (Stream<Path> walk = Files.walk(dataDir)) {
      for (Path p : walk.toList()) {
        Files.setPosixFilePermissions(
            p, PosixFilePermissions.fromString(Files.isDirectory(p) ? "rwx------" : "rw-------"));
        pg.giveToPgUser(p);
      }
    }
  }

  /**
   * {@link #fetch} with its progress on {@code out}, as the commands show it: {@code fetching
   * basebackup of <branch> at <lsn> ... 12 MB ... 40 MB, 1234 files in 2.1 s} (or {@code ...
   * failed} before the exception).
   */
  static void fetchShowingProgress(
      InetSocketAddress pageserverPg,
      @Nullable String token,
      String branch,
      TenantId tenant,
      TimelineId timeline,
      Lsn lsn,
      Path target,
      PgDistribution pg,
      boolean slim,
      PrintWriter out) {
    out.print(
        "fetching " + (slim ? "slim " : "") + "basebackup of " + branch + " at " + lsn + " ...");
    out.flush();
    long t0 = System.nanoTime();
    Result res;
    try {
      res =
          fetch(
              pageserverPg,
              token,
              tenant,
              timeline,
              lsn,
              target,
              pg,
              slim,
              bytes -> {
                out.print(" " + megabytes(bytes) + " ...");
                out.flush();
              });
    } catch (RuntimeException e) {
      out.println(" failed");
      throw e;
    }
    out.printf(
        Locale.ROOT,
        " %s, %d files in %.1f s%n",
        megabytes(res.bytes()),
        res.files(),
        (System.nanoTime() - t0) / 1e9);
  }

  private static String megabytes(long bytes) {
    return String.format(Locale.ROOT, "%d MB", Math.round(bytes / 1e6));
  }

  /** Deletes a tree; missing is fine. */
  public static void deleteTree(Path root) {
    if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(root)) {
      List<Path> all = walk.sorted(java.util.Comparator.reverseOrder()).toList();
      for (Path p : all) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new ControlPlaneException("cannot delete " + root + ": " + e.getMessage(), e);
    }
  }

  /** The copy's buffers as an input stream; counts bytes and reports progress. Not thread-safe. */
  private static final class ChunkInputStream extends InputStream {
    private final Iterator<ByteBuffer> chunks;
    private final long[] bytes;
    private final LongConsumer progress;
    private ByteBuffer current = ByteBuffer.allocate(0);
    private long lastReport = System.nanoTime();

    ChunkInputStream(Iterator<ByteBuffer> chunks, long[] bytes, LongConsumer progress) {
      this.chunks = chunks;
      this.bytes = bytes;
      this.progress = progress;
    }

    private boolean fill() {
      while (!current.hasRemaining()) {
        if (!chunks.hasNext()) {
          return false;
        }
        current = chunks.next();
        bytes[0] += current.remaining();
        long now = System.nanoTime();
        if (now - lastReport > 2_000_000_000L) {
          lastReport = now;
          progress.accept(bytes[0]);
        }
      }
      return true;
    }

    @Override
    public int read() {
      return fill() ? current.get() & 0xFF : -1;
    }

    @Override
    public int read(byte[] b, int off, int len) {
      if (len == 0) {
        return 0;
      }
      if (!fill()) {
        return -1;
      }
      int n = Math.min(len, current.remaining());
      current.get(b, off, n);
      return n;
    }
  }
}
