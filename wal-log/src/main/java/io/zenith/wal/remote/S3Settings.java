package io.zenith.wal.remote;

import java.net.URI;
import java.time.Duration;
import org.jspecify.annotations.Nullable;

/**
 * An S3 bucket (or an S3-compatible server) as remote storage. Immutable.
 *
 * @param bucket the bucket; it must exist
 * @param prefix the key prefix every object of this storage lives under ("" for the bucket's root),
 *     a valid {@link RemoteKey} otherwise
 * @param endpoint the server's URL (null: AWS's endpoint of {@code region})
 * @param region the signing region
 * @param pathStyle address the bucket as {@code endpoint/bucket} rather than {@code
 *     bucket.endpoint} (S3-compatible servers such as s3proxy and MinIO)
 * @param credentials explicit keys, or null for the SDK's default chain (environment, system
 *     properties, profile files, container and instance roles)
 * @param multipartThreshold files of at least this size are uploaded in parts
 * @param partSize the size of each part but the last (S3: at least 5 MiB)
 * @param partConcurrency how many parts of one upload are sent at a time
 * @param pageSize keys per listing request (S3: at most 1000)
 * @param maxAttempts attempts of one call, the first included, for transient failures
 * @param attemptTimeout bound of one HTTP attempt
 * @param callTimeout bound of one call with all its attempts and backoff
 */
public record S3Settings(
    String bucket,
    String prefix,
    @Nullable URI endpoint,
    String region,
    boolean pathStyle,
    @Nullable Credentials credentials,
    long multipartThreshold,
    long partSize,
    int partConcurrency,
    int pageSize,
    int maxAttempts,
    Duration attemptTimeout,
    Duration callTimeout)
    implements RemoteStorageSettings {

  /** An access key pair (tests against s3proxy; production uses the default chain). */
  public record Credentials(String accessKeyId, String secretAccessKey) {
    @Override
    public String toString() {
      return "Credentials[" + accessKeyId + ", secret hidden]";
    }
  }

  public static final String DEFAULT_REGION = "us-east-1";
  public static final long MIN_PART_SIZE = 5L << 20;

  public S3Settings {
    if (bucket == null || !bucket.matches("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")) {
      throw new IllegalArgumentException(
          "bucket \"" + bucket + "\" is not a valid S3 bucket name (3-63 of a-z 0-9 . -)");
    }
    prefix = prefix == null ? "" : prefix;
    if (!prefix.isEmpty()) {
      RemoteKey.of(prefix); // throws naming the rule it breaks
    }
    if (region == null || region.isBlank()) {
      throw new IllegalArgumentException("region must not be empty");
    }
    if (endpoint != null
        && (endpoint.getScheme() == null
            || !(endpoint.getScheme().equals("http") || endpoint.getScheme().equals("https"))
            || endpoint.getHost() == null)) {
      throw new IllegalArgumentException(
          "endpoint \"" + endpoint + "\" is not an http:// or https:// URL with a host");
    }
    if (partSize < MIN_PART_SIZE || multipartThreshold < partSize) {
      throw new IllegalArgumentException(
          "part size must be at least 5 MiB and the multipart threshold at least the part size");
    }
    if (partConcurrency < 1 || pageSize < 1 || pageSize > 1000 || maxAttempts < 1) {
      throw new IllegalArgumentException(
          "part concurrency and attempts must be positive, page size between 1 and 1000");
    }
    if (attemptTimeout.isNegative()
        || attemptTimeout.isZero()
        || callTimeout.compareTo(attemptTimeout) < 0) {
      throw new IllegalArgumentException(
          "timeouts must be positive, the call's at least the attempt's");
    }
  }

  /** Files of at least this size go up in parts by default (ADR 0031). */
  public static final long DEFAULT_MULTIPART_THRESHOLD = 64L << 20;

  /**
   * The bucket with defaults: 64 MiB threshold, 8 MiB parts, 4 parts at a time, 1000 keys a page, 5
   * attempts, 30 s per attempt, 2 min per call. The threshold keeps the layer files a flush writes
   * (a checkpoint distance, 32 MiB by default) to one PUT each: on s3proxy a multipart upload of a
   * 16 MiB file took 1.5–2× as long as a PUT (ADR 0031); files of compaction's target size (128
   * MiB) still go up in parts, 4 at a time.
   */
  public static S3Settings of(
      String bucket, String prefix, @Nullable URI endpoint, String region, boolean pathStyle) {
    return new S3Settings(
        bucket,
        prefix,
        endpoint,
        region,
        pathStyle,
        null,
        DEFAULT_MULTIPART_THRESHOLD,
        8L << 20,
        4,
        1000,
        5,
        Duration.ofSeconds(30),
        Duration.ofMinutes(2));
  }

  public S3Settings withCredentials(@Nullable Credentials c) {
    return new S3Settings(
        bucket,
        prefix,
        endpoint,
        region,
        pathStyle,
        c,
        multipartThreshold,
        partSize,
        partConcurrency,
        pageSize,
        maxAttempts,
        attemptTimeout,
        callTimeout);
  }

  public S3Settings withPrefix(String p) {
    return new S3Settings(
        bucket,
        p,
        endpoint,
        region,
        pathStyle,
        credentials,
        multipartThreshold,
        partSize,
        partConcurrency,
        pageSize,
        maxAttempts,
        attemptTimeout,
        callTimeout);
  }

  /** The same bucket with another multipart threshold, part size and part concurrency. */
  public S3Settings withMultipart(long threshold, long partBytes, int concurrentParts) {
    return new S3Settings(
        bucket,
        prefix,
        endpoint,
        region,
        pathStyle,
        credentials,
        threshold,
        partBytes,
        concurrentParts,
        pageSize,
        maxAttempts,
        attemptTimeout,
        callTimeout);
  }

  public S3Settings withPageSize(int keys) {
    return new S3Settings(
        bucket,
        prefix,
        endpoint,
        region,
        pathStyle,
        credentials,
        multipartThreshold,
        partSize,
        partConcurrency,
        keys,
        maxAttempts,
        attemptTimeout,
        callTimeout);
  }

  public S3Settings withRetries(int attempts, Duration attempt, Duration call) {
    return new S3Settings(
        bucket,
        prefix,
        endpoint,
        region,
        pathStyle,
        credentials,
        multipartThreshold,
        partSize,
        partConcurrency,
        pageSize,
        attempts,
        attempt,
        call);
  }

  /** The object name of {@code key}: the prefix, '/', the key. */
  String objectName(RemoteKey key) {
    return prefix.isEmpty() ? key.path() : prefix + "/" + key.path();
  }

  /** The object-name prefix of a listing prefix. */
  String objectPrefix(String keyPrefix) {
    return prefix.isEmpty() ? keyPrefix : prefix + "/" + keyPrefix;
  }

  /** The key of an object name under the prefix. */
  RemoteKey keyOf(String objectName) {
    return RemoteKey.of(prefix.isEmpty() ? objectName : objectName.substring(prefix.length() + 1));
  }

  @Override
  public String describe() {
    return "S3 bucket "
        + bucket
        + (prefix.isEmpty() ? "" : " prefix " + prefix)
        + (endpoint == null ? "" : " at " + endpoint)
        + " (region "
        + region
        + (pathStyle ? ", path-style" : "")
        + ")";
  }
}
