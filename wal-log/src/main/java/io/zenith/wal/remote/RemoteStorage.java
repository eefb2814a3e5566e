package io.zenith.wal.remote;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Collection;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Bottomless storage of objects named by {@link RemoteKey}s: a local directory ({@link
 * LocalRemoteStorage}) or an S3 bucket prefix ({@link S3RemoteStorage}). Both pass the same
 * contract tests ({@code RemoteStorageContract}); the interface is sealed so that a new backend
 * cannot appear without them.
 *
 * <p>Every operation is lazy and asynchronous: nothing happens until the returned publisher is
 * subscribed, each subscription repeats the operation (so a caller's own retry is a resubscribe),
 * and cancelling a subscription cancels the request. Failures are {@link RemoteStorageException}s
 * with a {@link RemoteStorageException.Kind}; a bad key is an IllegalArgumentException when the key
 * is made. Blocking file I/O runs on Reactor's bounded-elastic scheduler, never on the caller's
 * thread, and every S3 call is bounded by the configured timeouts.
 *
 * <p>Objects are whole: a reader sees an object's old content or its new one, never part of an
 * upload. Implementations are thread-safe.
 */
public sealed interface RemoteStorage extends AutoCloseable
    permits LocalRemoteStorage, S3RemoteStorage {

  /** Opens the backend {@code settings} describe. */
  static RemoteStorage open(RemoteStorageSettings settings) {
    return switch (settings) {
      case RemoteStorageSettings.Local l -> new LocalRemoteStorage(l.root());
      case S3Settings s -> new S3RemoteStorage(s);
    };
  }

  /**
   * Uploads the file {@code source} as {@code key}, replacing any object of that name. The file is
   * streamed (bounded memory whatever its size) and must not change while it is uploaded.
   *
   * @return the number of bytes uploaded
   */
  Mono<Long> upload(Path source, RemoteKey key);

  /** Stores {@code bytes} as {@code key}, replacing any object of that name: small objects. */
  Mono<Void> put(RemoteKey key, byte[] bytes);

  /**
   * Downloads {@code key} into {@code target} durably: into a temporary file beside it, fsynced,
   * renamed over {@code target}, directory fsynced. On any failure {@code target} is untouched and
   * no temporary file is left. The parent directory must exist.
   *
   * @return the number of bytes downloaded
   */
  Mono<Long> download(RemoteKey key, Path target);

  /**
   * Reads {@code length} bytes of {@code key} from {@code offset}: fewer if the object ends sooner,
   * none if it ends at or before {@code offset}.
   *
   * @return a heap buffer positioned at 0 whose remaining bytes are the range
   */
  Mono<ByteBuffer> read(RemoteKey key, long offset, int length);

  /** The whole object {@code key}: small objects (an index). */
  default Mono<byte[]> get(RemoteKey key) {
    return read(key, 0, Integer.MAX_VALUE - 8)
        .map(
            b -> {
              byte[] out = new byte[b.remaining()];
              b.get(out);
              return out;
            });
  }

  /**
   * Every object whose key starts with {@code prefix} (a string prefix, as S3's: "a/b" matches
   * "a/b/c" and "a/bc"; "" matches all), in the order of their keys' UTF-8 bytes. Pages are fetched
   * as the subscriber requests them.
   */
  Flux<RemoteObject> list(String prefix);

  /** Deletes {@code key}; deleting an object that does not exist succeeds (as on S3). */
  Mono<Void> delete(RemoteKey key);

  /** Deletes every key of {@code keys} (S3: in batches of up to 1000 per request). */
  Mono<Void> deleteAll(Collection<RemoteKey> keys);

  /** One line for logs: the backend and where it stores, without credentials. */
  String describe();

  /** Releases connections and threads; operations under way fail. */
  @Override
  void close();
}
