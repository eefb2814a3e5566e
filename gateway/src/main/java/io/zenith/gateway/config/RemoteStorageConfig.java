package io.zenith.gateway.config;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageSettings;
import io.zenith.wal.remote.S3Settings;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;

/**
 * The {@code [remote_storage]} section of {@code pageserver.toml} and {@code safekeeper.toml}: a
 * local directory or an S3 bucket (ADR 0022). Exactly one of {@code local_path} and {@code bucket}.
 *
 * <pre>
 * [remote_storage]
 * local_path = "../remote"              # a directory, relative to the data directory
 *
 * [remote_storage]
 * bucket = "my-bucket"                  # S3 (credentials: the AWS SDK's default chain)
 * prefix = "zenith/prod"                # optional; objects live under it
 * endpoint = "http://127.0.0.1:9000"    # optional: an S3-compatible server
 * region = "us-east-1"                  # optional (default us-east-1)
 * path_style = true                     # optional (default: true with an endpoint)
 * </pre>
 *
 * Unset keys are left out when written (the TOML writer would write null as ""). Immutable.
 */
public record RemoteStorageConfig(
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("local_path")
        @Nullable String localPath,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("bucket") @Nullable String bucket,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("prefix") @Nullable String prefix,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("endpoint") @Nullable String endpoint,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("region") @Nullable String region,
    @JsonInclude(JsonInclude.Include.NON_NULL) @JsonProperty("path_style")
        @Nullable Boolean pathStyle) {

  /** A local directory. */
  public static RemoteStorageConfig local(Path dir) {
    return new RemoteStorageConfig(dir.toString(), null, null, null, null, null);
  }

  /**
   * What {@code zenith init --remote URL} means: {@code s3://bucket[/prefix]} (with an optional
   * endpoint and region) or a local directory ({@code file:///abs/path} or a path).
   *
   * @throws IllegalArgumentException with one line naming the problem
   */
  public static RemoteStorageConfig fromUrl(
      String url, @Nullable String endpoint, @Nullable String region) {
    return fromUrl(url, endpoint, region, "--remote ", "--remote-endpoint and --remote-region");
  }

  /**
   * {@link #fromUrl(String, String, String)} for another command: errors start with {@code label}
   * (then the URL) and name the endpoint and region options as {@code options}.
   */
  public static RemoteStorageConfig fromUrl(
      String url,
      @Nullable String endpoint,
      @Nullable String region,
      String label,
      String options) {
    if (url.startsWith("s3://")) {
      String rest = url.substring("s3://".length());
      if (rest.contains("?") || rest.contains("#") || rest.contains("@")) {
        throw new IllegalArgumentException(
            label + url + ": expected s3://BUCKET[/PREFIX], without ?, # or user@");
      }
      int slash = rest.indexOf('/');
      String bucket = slash < 0 ? rest : rest.substring(0, slash);
      if (bucket.isEmpty()) {
        throw new IllegalArgumentException(label + url + ": no bucket (s3://BUCKET/PREFIX)");
      }
      String prefix = slash < 0 ? "" : rest.substring(slash + 1).replaceAll("^/+|/+$", "");
      RemoteStorageConfig c =
          new RemoteStorageConfig(
              null, bucket, prefix.isEmpty() ? null : prefix, endpoint, region, null);
      try {
        c.settings(Path.of("."));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(label + url + ": " + e.getMessage());
      }
      return c;
    }
    if (endpoint != null || region != null) {
      throw new IllegalArgumentException(options + " apply to s3:// URLs only");
    }
    if (url.startsWith("file://")) {
      return local(Path.of(URI.create(url)));
    }
    if (url.contains("://")) {
      throw new IllegalArgumentException(
          label + url + ": expected s3://BUCKET[/PREFIX], file:///PATH or a directory");
    }
    return local(Path.of(url).toAbsolutePath().normalize());
  }

  /** The same storage, a local directory named relative to {@code dataDir} (movable repos). */
  public RemoteStorageConfig relativeTo(Path dataDir) {
    if (localPath == null || !Path.of(localPath).isAbsolute()) {
      return this;
    }
    return local(dataDir.toAbsolutePath().relativize(Path.of(localPath)));
  }

  /**
   * The storage this section describes for a service whose data directory is {@code dataDir}.
   *
   * @throws IllegalArgumentException with one line starting {@code remote_storage:}
   */
  public RemoteStorageSettings settings(Path dataDir) {
    try {
      if ((localPath == null) == (bucket == null)) {
        throw new IllegalArgumentException(
            "set either local_path (a directory) or bucket (S3), not "
                + (localPath == null ? "neither" : "both"));
      }
      if (localPath != null) {
        if (prefix != null || endpoint != null || region != null || pathStyle != null) {
          throw new IllegalArgumentException(
              "prefix, endpoint, region and path_style apply to S3 (bucket) only");
        }
        if (localPath.isBlank()) {
          throw new IllegalArgumentException("local_path must not be empty");
        }
        return new RemoteStorageSettings.Local(dataDir.resolve(localPath));
      }
      URI uri = endpoint == null ? null : endpoint(endpoint);
      return S3Settings.of(
          bucket,
          prefix == null ? "" : prefix,
          uri,
          region == null ? S3Settings.DEFAULT_REGION : region,
          pathStyle != null ? pathStyle : uri != null);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("remote_storage: " + e.getMessage());
    }
  }

  private static URI endpoint(String s) {
    try {
      return new URI(s);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException("endpoint \"" + s + "\" is not a URL: " + e.getReason());
    }
  }

  /**
   * Opens the remote storage of a service and logs which one it is (one line), or logs that it has
   * none. The caller closes it ({@link #close}).
   */
  public static @Nullable RemoteStorage open(
      @Nullable RemoteStorageConfig config, Path dataDir, String service, Logger log) {
    if (config == null) {
      log.info("{}: no remote storage configured", service);
      return null;
    }
    RemoteStorage storage = RemoteStorage.open(config.settings(dataDir));
    log.info("{}: remote storage is {}", service, storage.describe());
    return storage;
  }

  /** Closes what {@link #open} returned. */
  public static void close(@Nullable RemoteStorage storage) {
    if (storage != null) {
      storage.close();
    }
  }
}
