package io.zenith.wal.remote;

import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.zenith.wal.Fsync;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.FileRequestBodyConfiguration;
import software.amazon.awssdk.core.FileTransformerConfiguration;
import software.amazon.awssdk.core.async.AsyncRequestBody;
import software.amazon.awssdk.core.async.AsyncResponseTransformer;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.http.nio.netty.SdkEventLoopGroup;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.retries.api.BackoffStrategy;
import software.amazon.awssdk.services.s3.S3AsyncClient;
import software.amazon.awssdk.services.s3.model.CompletedMultipartUpload;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.Delete;
import software.amazon.awssdk.services.s3.model.DeleteObjectsResponse;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.S3Error;

/**
 * Remote storage in an S3 bucket under a prefix, through the AWS SDK v2's asynchronous client on
 * its Netty transport (ADR 0022).
 *
 * <p>Uploads stream from the file: one {@code PutObject} below {@link
 * S3Settings#multipartThreshold()}, otherwise a multipart upload whose parts ({@link
 * S3Settings#partSize()}) are read from the file at their offsets, at most {@link
 * S3Settings#partConcurrency()} at a time, so memory stays bounded by the SDK's chunk buffers
 * whatever the file's size; a failed multipart upload is aborted (best effort; a bucket lifecycle
 * rule cleans up what an abort misses). Downloads go to a temporary file beside the target, which
 * is fsynced, renamed over the target and its directory fsynced; a failure deletes it.
 *
 * <p>Transient failures (connection errors, timeouts, 5xx, throttling) are retried by the SDK's
 * standard retry strategy, set explicitly: {@link S3Settings#maxAttempts()} attempts with
 * exponential backoff and full jitter from 100 ms up to 5 s; each attempt is bounded by {@link
 * S3Settings#attemptTimeout()} and the call with its retries by {@link S3Settings#callTimeout()}.
 * What is left after that is a {@link RemoteStorageException} ({@link S3Errors}).
 *
 * <p>Thread-safe. The SDK completes its futures on its own threads; file work that blocks (fsync,
 * rename) moves to Reactor's bounded-elastic scheduler.
 */
public final class S3RemoteStorage implements RemoteStorage {
  private static final Logger log = LoggerFactory.getLogger(S3RemoteStorage.class);
  private static final int FILE_CHUNK = 256 * 1024;
  private static final int DELETE_BATCH = 1000;

  private final S3Settings settings;
  private final S3AsyncClient client;
  private final EventLoopGroup eventLoops;
  private final AwsCredentialsProvider credentials;
  private final String where;

  public S3RemoteStorage(S3Settings settings) {
    this.settings = settings;
    this.where = settings.describe();
    this.credentials =
        settings.credentials() == null
            ? DefaultCredentialsProvider.builder().build()
            : StaticCredentialsProvider.create(
                AwsBasicCredentials.create(
                    settings.credentials().accessKeyId(),
                    settings.credentials().secretAccessKey()));
    // Our own event loops: the SDK's group closes with a 2 s quiet period, which every close
    // would wait out; ours takes 100 ms (closeResources), and close() does not wait for it.
    SdkEventLoopGroup loops =
        SdkEventLoopGroup.builder()
            .numberOfThreads(2)
            .threadFactory(new DefaultThreadFactory("zenith-s3", true))
            .build();
    this.eventLoops = loops.eventLoopGroup();
    var builder =
        S3AsyncClient.builder()
            .httpClientBuilder(
                NettyNioAsyncHttpClient.builder()
                    .eventLoopGroup(loops)
                    .maxConcurrency(64)
                    .connectionTimeout(min(Duration.ofSeconds(10), settings.attemptTimeout()))
                    .connectionAcquisitionTimeout(settings.callTimeout()))
            .region(Region.of(settings.region()))
            .forcePathStyle(settings.pathStyle())
            .credentialsProvider(credentials)
            .overrideConfiguration(
                o ->
                    o.apiCallAttemptTimeout(settings.attemptTimeout())
                        .apiCallTimeout(settings.callTimeout())
                        .retryStrategy(
                            AwsRetryStrategy.standardRetryStrategy().toBuilder()
                                .maxAttempts(settings.maxAttempts())
                                .backoffStrategy(
                                    BackoffStrategy.exponentialDelay(
                                        Duration.ofMillis(100), Duration.ofSeconds(5)))
                                .throttlingBackoffStrategy(
                                    BackoffStrategy.exponentialDelay(
                                        Duration.ofSeconds(1), Duration.ofSeconds(5)))
                                .build()));
    if (settings.endpoint() != null) {
      builder.endpointOverride(settings.endpoint());
    }
    try {
      this.client = builder.build();
    } catch (RuntimeException e) {
      closeResources();
      throw e;
    }
  }

  private static Duration min(Duration a, Duration b) {
    return a.compareTo(b) <= 0 ? a : b;
  }

  public S3Settings settings() {
    return settings;
  }

  @Override
  public Mono<Long> upload(Path source, RemoteKey key) {
    String name = settings.objectName(key);
    return Mono.fromCallable(() -> Files.size(source))
        .subscribeOn(Schedulers.boundedElastic())
        .onErrorMap(
            NoSuchFileException.class,
            e ->
                new RemoteStorageException(
                    RemoteStorageException.Kind.PERMANENT,
                    key,
                    where + ": upload " + key + " failed: the file " + source + " does not exist",
                    e))
        .flatMap(
            size ->
                size >= settings.multipartThreshold()
                    ? multipart(source, key, name, size)
                    : call(
                            "upload",
                            key,
                            () ->
                                client.putObject(
                                    r -> r.bucket(settings.bucket()).key(name).contentLength(size),
                                    fileBody(source, 0, size)))
                        .thenReturn(size));
  }

  private Mono<Long> multipart(Path source, RemoteKey key, String name, long size) {
    long partSize = settings.partSize();
    int parts = (int) ((size + partSize - 1) / partSize);
    return call(
            "upload",
            key,
            () -> client.createMultipartUpload(r -> r.bucket(settings.bucket()).key(name)))
        .flatMap(
            created -> {
              String uploadId = created.uploadId();
              return Flux.range(1, parts)
                  .flatMapSequential(
                      n -> {
                        long off = (n - 1) * partSize;
                        long len = Math.min(partSize, size - off);
                        return call(
                                "upload part " + n + "/" + parts + " of",
                                key,
                                () ->
                                    client.uploadPart(
                                        r ->
                                            r.bucket(settings.bucket())
                                                .key(name)
                                                .uploadId(uploadId)
                                                .partNumber(n)
                                                .contentLength(len),
                                        fileBody(source, off, len)))
                            .map(p -> CompletedPart.builder().partNumber(n).eTag(p.eTag()).build());
                      },
                      settings.partConcurrency())
                  .collectList()
                  .flatMap(
                      done ->
                          call(
                              "complete the upload of",
                              key,
                              () ->
                                  client.completeMultipartUpload(
                                      r ->
                                          r.bucket(settings.bucket())
                                              .key(name)
                                              .uploadId(uploadId)
                                              .multipartUpload(
                                                  CompletedMultipartUpload.builder()
                                                      .parts(done)
                                                      .build()))))
                  .thenReturn(size)
                  .onErrorResume(e -> abort(key, name, uploadId).then(Mono.error(e)))
                  .doOnCancel(() -> abort(key, name, uploadId).subscribe());
            });
  }

  /** Aborts a multipart upload; a failure is logged, not raised (the upload failed already). */
  private Mono<Void> abort(RemoteKey key, String name, String uploadId) {
    return call(
            "abort the upload of",
            key,
            () ->
                client.abortMultipartUpload(
                    r -> r.bucket(settings.bucket()).key(name).uploadId(uploadId)))
        .then()
        .onErrorResume(
            e -> {
              log.warn("{} (parts stay until a lifecycle rule removes them)", e.getMessage());
              return Mono.empty();
            });
  }

  private static AsyncRequestBody fileBody(Path source, long offset, long length) {
    return AsyncRequestBody.fromFile(
        FileRequestBodyConfiguration.builder()
            .path(source)
            .position(offset)
            .numBytesToRead(length)
            .chunkSizeInBytes(FILE_CHUNK)
            .build());
  }

  @Override
  public Mono<Void> put(RemoteKey key, byte[] bytes) {
    byte[] copy = bytes.clone();
    return call(
            "put",
            key,
            () ->
                client.putObject(
                    r ->
                        r.bucket(settings.bucket())
                            .key(settings.objectName(key))
                            .contentLength((long) copy.length),
                    AsyncRequestBody.fromBytes(copy)))
        .then();
  }

  @Override
  public Mono<Long> download(RemoteKey key, Path target) {
    Path abs = target.toAbsolutePath();
    Path dir = abs.getParent();
    return Mono.defer(
        () -> {
          Path tmp = dir.resolve("." + abs.getFileName() + "." + UUID.randomUUID() + ".tmp");
          return call(
                  "download",
                  key,
                  () ->
                      client.getObject(
                          r -> r.bucket(settings.bucket()).key(settings.objectName(key)),
                          AsyncResponseTransformer.toFile(
                              tmp, FileTransformerConfiguration.defaultCreateOrReplaceExisting())))
              // the fsync and rename block: off the SDK's threads
              .flatMap(
                  response ->
                      Mono.fromCallable(() -> install(key, tmp, abs))
                          .subscribeOn(Schedulers.boundedElastic()))
              .doOnError(e -> deleteQuietly(tmp))
              .doOnCancel(() -> deleteQuietly(tmp));
        });
  }

  /** The downloaded temporary file: fsynced, renamed over the target, directory fsynced. */
  private long install(RemoteKey key, Path tmp, Path target) {
    try {
      long size;
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
        size = ch.size();
        Fsync.force(ch, tmp);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      Fsync.directory(target.getParent());
      return size;
    } catch (IOException e) {
      throw new RemoteStorageException(
          RemoteStorageException.Kind.PERMANENT,
          key,
          where + ": download " + key + " to " + target + " failed: " + e,
          e);
    }
  }

  private static void deleteQuietly(Path tmp) {
    try {
      Files.deleteIfExists(tmp);
    } catch (IOException e) {
      log.warn("cannot delete the temporary file {}: {}", tmp, e.toString());
    }
  }

  @Override
  public Mono<ByteBuffer> read(RemoteKey key, long offset, int length) {
    if (offset < 0 || length < 0) {
      return Mono.error(new IllegalArgumentException("negative offset or length"));
    }
    if (length == 0) {
      return Mono.just(ByteBuffer.allocate(0));
    }
    String range = "bytes=" + offset + "-" + (offset + length - 1);
    return Mono.fromFuture(
            () ->
                client.getObject(
                    r -> r.bucket(settings.bucket()).key(settings.objectName(key)).range(range),
                    AsyncResponseTransformer.toBytes()),
            false)
        .map(bytes -> ByteBuffer.wrap(bytes.asByteArray()))
        .onErrorResume(S3Errors::rangeNotSatisfiable, e -> Mono.just(ByteBuffer.allocate(0)))
        .onErrorMap(e -> S3Errors.translate(where, "read", key, e));
  }

  @Override
  public Flux<RemoteObject> list(String prefix) {
    RemoteKey.checkPrefix(prefix);
    String objectPrefix = settings.objectPrefix(prefix);
    return Flux.defer(
            () ->
                Flux.from(
                    client
                        .listObjectsV2Paginator(
                            r ->
                                r.bucket(settings.bucket())
                                    .prefix(objectPrefix)
                                    .maxKeys(settings.pageSize()))
                        .contents()))
        .<RemoteObject>handle(
            (o, sink) -> {
              try {
                sink.next(new RemoteObject(settings.keyOf(o.key()), o.size()));
              } catch (IllegalArgumentException notOurs) {
                // an object no key can name (put there by something else): not part of the store
                log.debug("{}: skipping object {}: {}", where, o.key(), notOurs.getMessage());
              }
            })
        .onErrorMap(e -> S3Errors.translate(where, "list \"" + prefix + "\"", null, e));
  }

  @Override
  public Mono<Void> delete(RemoteKey key) {
    return call(
            "delete",
            key,
            () ->
                client.deleteObject(r -> r.bucket(settings.bucket()).key(settings.objectName(key))))
        .then();
  }

  @Override
  public Mono<Void> deleteAll(Collection<RemoteKey> keys) {
    List<RemoteKey> all = List.copyOf(keys);
    List<List<RemoteKey>> batches = new ArrayList<>();
    for (int i = 0; i < all.size(); i += DELETE_BATCH) {
      batches.add(all.subList(i, Math.min(all.size(), i + DELETE_BATCH)));
    }
    return Flux.fromIterable(batches).concatMap(this::deleteBatch).then();
  }

  private Mono<Void> deleteBatch(List<RemoteKey> batch) {
    List<ObjectIdentifier> ids =
        batch.stream()
            .map(k -> ObjectIdentifier.builder().key(settings.objectName(k)).build())
            .toList();
    return call(
            "delete " + batch.size() + " objects from " + batch.getFirst() + ",",
            null,
            () ->
                client.deleteObjects(
                    r ->
                        r.bucket(settings.bucket())
                            .delete(Delete.builder().objects(ids).quiet(true).build())))
        .flatMap(this::checkDeleted);
  }

  /** A multi-object delete answers 200 and lists the keys it could not delete. */
  private Mono<Void> checkDeleted(DeleteObjectsResponse response) {
    if (!response.hasErrors() || response.errors().isEmpty()) {
      return Mono.empty();
    }
    S3Error first = response.errors().getFirst();
    boolean transientError =
        "InternalError".equals(first.code())
            || "SlowDown".equals(first.code())
            || "ServiceUnavailable".equals(first.code());
    return Mono.error(
        new RemoteStorageException(
            transientError
                ? RemoteStorageException.Kind.TRANSIENT
                : RemoteStorageException.Kind.PERMANENT,
            null,
            where
                + ": "
                + response.errors().size()
                + " objects were not deleted, the first "
                + first.key()
                + ": "
                + first.code()
                + " "
                + first.message()));
  }

  /** One SDK call as a lazy Mono whose cancellation cancels the request, errors translated. */
  private <T> Mono<T> call(String op, RemoteKey key, Supplier<CompletableFuture<T>> request) {
    return Mono.fromFuture(request, false).onErrorMap(e -> S3Errors.translate(where, op, key, e));
  }

  @Override
  public String describe() {
    return where;
  }

  @Override
  public void close() {
    client.close();
    closeResources();
  }

  /** What the client does not close itself: it was handed them. */
  private void closeResources() {
    if (credentials instanceof AutoCloseable c) {
      try {
        c.close(); // the default chain's providers may refresh credentials in the background
      } catch (Exception e) {
        log.warn("{}: closing the credentials provider failed: {}", where, e.toString());
      }
    }
    // A quiet period, not none: client.close() closes the pooled connections asynchronously and
    // their close listeners submit tasks to these loops; a loop shut down at once rejects them and
    // Netty logs a RejectedExecutionException warning (on a CLI's stderr). close() does not wait.
    eventLoops.shutdownGracefully(100, 1_000, TimeUnit.MILLISECONDS);
  }
}
