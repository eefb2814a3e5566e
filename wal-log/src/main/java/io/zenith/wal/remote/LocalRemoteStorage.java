package io.zenith.wal.remote;

import io.zenith.wal.Fsync;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * Remote storage in a local directory: key {@code a/b/c} is the file {@code <root>/a/b/c}. The
 * embedded default of a repository ({@code .zenith/remote}), so that a laptop has bottomless
 * storage without configuration, and the reference the S3 backend is held to.
 *
 * <p>Writes are atomic and durable: the bytes go to a temporary file {@code .<name>.<random>.tmp}
 * beside the target, which is fsynced, renamed over it, and its directory fsynced (directories it
 * creates are made durable too). A reader therefore sees an old object or a complete new one, never
 * a partial one, and a crash leaves at most a temporary file, whose name no key can have (segments
 * never start with '.') and which listings skip. Blocking I/O runs on Reactor's bounded-elastic
 * scheduler. Empty directories left by deletions stay (listings ignore them).
 *
 * <p>Thread-safe: concurrent writers of one key each rename a whole file; the last rename wins.
 */
public final class LocalRemoteStorage implements RemoteStorage {
  private final Path root;

  /** Storage in {@code root}, created (durably) if missing. */
  public LocalRemoteStorage(Path root) {
    this.root = root.toAbsolutePath().normalize();
    try {
      createDirectories(this.root);
    } catch (IOException e) {
      throw new RemoteStorageException(
          RemoteStorageException.Kind.PERMANENT,
          null,
          "cannot create the remote storage directory " + this.root + ": " + e,
          e);
    }
  }

  public Path root() {
    return root;
  }

  /** The file of {@code key}. */
  public Path file(RemoteKey key) {
    return root.resolve(key.path());
  }

  @Override
  public Mono<Long> upload(Path source, RemoteKey key) {
    return blocking(
        "upload " + source + " to",
        key,
        () -> {
          Path target = file(key);
          try (FileChannel in = FileChannel.open(source, StandardOpenOption.READ)) {
            createDirectories(target.getParent());
            return writeAtomically(
                target,
                out -> {
                  long size = in.size();
                  long done = 0;
                  while (done < size) {
                    done += in.transferTo(done, size - done, out);
                  }
                  return size;
                });
          } catch (NoSuchFileException e) {
            if (!Files.exists(source)) {
              throw permanent("upload", key, "the file " + source + " does not exist", e);
            }
            throw e;
          }
        });
  }

  @Override
  public Mono<Void> put(RemoteKey key, byte[] bytes) {
    return blocking(
            "put",
            key,
            () -> {
              Path target = file(key);
              createDirectories(target.getParent());
              return writeAtomically(target, out -> writeFully(out, ByteBuffer.wrap(bytes)));
            })
        .then();
  }

  @Override
  public Mono<Long> download(RemoteKey key, Path target) {
    return blocking(
        "download",
        key,
        () -> {
          try (FileChannel in = FileChannel.open(file(key), StandardOpenOption.READ)) {
            return writeAtomically(
                target.toAbsolutePath(),
                out -> {
                  long size = in.size();
                  long done = 0;
                  while (done < size) {
                    done += in.transferTo(done, size - done, out);
                  }
                  return size;
                });
          }
        });
  }

  @Override
  public Mono<ByteBuffer> read(RemoteKey key, long offset, int length) {
    if (offset < 0 || length < 0) {
      return Mono.error(new IllegalArgumentException("negative offset or length"));
    }
    return blocking(
        "read",
        key,
        () -> {
          try (FileChannel in = FileChannel.open(file(key), StandardOpenOption.READ)) {
            long n = Math.max(0, Math.min(length, in.size() - offset));
            ByteBuffer b = ByteBuffer.allocate((int) n);
            while (b.hasRemaining()) {
              if (in.read(b, offset + b.position()) < 0) {
                break; // truncated meanwhile: cannot happen to a file we only ever rename over
              }
            }
            return b.flip();
          }
        });
  }

  @Override
  public Flux<RemoteObject> list(String prefix) {
    RemoteKey.checkPrefix(prefix);
    return blocking(
            "list",
            null,
            () -> {
              // Walk only the deepest directory the prefix names whole: "a/b/c" → "a/b".
              int slash = prefix.lastIndexOf('/');
              Path start = slash < 0 ? root : root.resolve(prefix.substring(0, slash));
              List<RemoteObject> out = new ArrayList<>();
              if (!Files.isDirectory(start, LinkOption.NOFOLLOW_LINKS)) {
                return out;
              }
              try (Stream<Path> files = Files.walk(start)) {
                for (Path p : (Iterable<Path>) files::iterator) {
                  String rel = root.relativize(p).toString();
                  if (rel.startsWith(prefix)
                      && !hidden(root.relativize(p))
                      && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
                    try {
                      out.add(new RemoteObject(RemoteKey.of(rel), Files.size(p)));
                    } catch (NoSuchFileException deletedMeanwhile) {
                      // a concurrent delete: the object is gone, as if listed a moment later
                    }
                  }
                }
              } catch (java.io.UncheckedIOException e) {
                if (!(e.getCause() instanceof NoSuchFileException)) {
                  throw e.getCause();
                }
              }
              out.sort((a, b) -> a.key().compareTo(b.key()));
              return out;
            })
        .flatMapIterable(l -> l);
  }

  /** A temporary file, or anything else under a name no key can have. */
  private static boolean hidden(Path relative) {
    for (Path segment : relative) {
      if (segment.toString().startsWith(".")) {
        return true;
      }
    }
    return false;
  }

  @Override
  public Mono<Void> delete(RemoteKey key) {
    return blocking(
            "delete",
            key,
            () -> {
              Path f = file(key);
              if (Files.deleteIfExists(f)) {
                Fsync.directory(f.getParent());
              }
              return Boolean.TRUE;
            })
        .then();
  }

  @Override
  public Mono<Void> deleteAll(Collection<RemoteKey> keys) {
    List<RemoteKey> copy = List.copyOf(keys);
    return Flux.fromIterable(copy).concatMap(this::delete).then();
  }

  @Override
  public String describe() {
    return "local directory " + root;
  }

  @Override
  public void close() {}

  @FunctionalInterface
  private interface Filler {
    long fill(FileChannel out) throws IOException;
  }

  /** temp beside the target → fill → fsync → rename → fsync(dir); the temp file goes on failure. */
  private static long writeAtomically(Path target, Filler filler) throws IOException {
    Path dir = target.getParent();
    Path tmp = dir.resolve("." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
    boolean done = false;
    try {
      long size;
      try (FileChannel out =
          FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        size = filler.fill(out);
        Fsync.force(out, tmp);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      done = true;
      Fsync.directory(dir);
      return size;
    } finally {
      if (!done) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  private static long writeFully(FileChannel out, ByteBuffer b) throws IOException {
    long n = b.remaining();
    while (b.hasRemaining()) {
      out.write(b);
    }
    return n;
  }

  /** Creates {@code dir} and its parents, each new entry's parent fsynced; races are fine. */
  private static void createDirectories(Path dir) throws IOException {
    if (Files.isDirectory(dir)) {
      return;
    }
    createDirectories(dir.getParent());
    try {
      Files.createDirectory(dir);
    } catch (FileAlreadyExistsException e) {
      if (!Files.isDirectory(dir)) {
        throw e;
      }
      return; // another writer made it; it makes it durable
    }
    Fsync.directory(dir.getParent());
  }

  private <T> Mono<T> blocking(String op, RemoteKey key, Callable<T> work) {
    return Mono.fromCallable(work)
        .subscribeOn(Schedulers.boundedElastic())
        .onErrorMap(IOException.class, e -> translate(op, key, e));
  }

  private RemoteStorageException translate(String op, RemoteKey key, IOException e) {
    if (e instanceof NoSuchFileException && key != null && !Files.exists(file(key))) {
      return new RemoteStorageException(
          RemoteStorageException.Kind.NOT_FOUND,
          key,
          describe() + ": " + op + " " + key + ": no such object",
          e);
    }
    return permanent(op, key, e.toString(), e);
  }

  private RemoteStorageException permanent(String op, RemoteKey key, String what, Throwable cause) {
    return new RemoteStorageException(
        RemoteStorageException.Kind.PERMANENT,
        key,
        describe() + ": " + op + (key == null ? "" : " " + key) + " failed: " + what,
        cause);
  }
}
