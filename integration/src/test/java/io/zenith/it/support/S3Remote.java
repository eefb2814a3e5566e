package io.zenith.it.support;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.wal.testing.S3Proxy;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Remote storage on a test's s3proxy ({@link S3Proxy}, issue 12: "s3proxy on loopback") for the
 * servers a test runs in its JVM and for the processes it starts.
 *
 * <p>Servers in the test JVM ({@code Pageserver.start}, in-process safekeepers) take S3 credentials
 * from the AWS SDK's default chain, as a deployment does: here the JVM's system properties {@code
 * aws.accessKeyId} and {@code aws.secretAccessKey}, set by {@link #config} for the rest of the
 * JVM's life and never cleared. The shared regression run's churn pageserver ({@code
 * RegressionRun}) uploads and downloads beside every test class, so a class that cleared them at
 * its end would cut it off from its bucket. Every s3proxy of the tests has the same keys. Processes
 * a test starts get them as environment variables ({@link #environment}). Thread-safe.
 */
public final class S3Remote {
  private S3Remote() {}

  /** A setup step that runs while s3proxy starts. */
  @FunctionalInterface
  public interface Setup {
    void run() throws Exception;
  }

  /** {@code s3://BUCKET/prefix}: what {@code zenith init --remote} takes. */
  public static String url(String prefix) {
    return "s3://" + S3Proxy.BUCKET + "/" + prefix;
  }

  /**
   * The {@code [remote_storage]} section for {@code s3}'s bucket under {@code prefix} (path-style,
   * through its endpoint), for a server in this JVM; makes the keys available to the SDK's default
   * chain first.
   */
  public static RemoteStorageConfig config(S3Proxy s3, String prefix) {
    credentialsForThisJvm();
    return RemoteStorageConfig.fromUrl(url(prefix), s3.endpoint().toString(), null);
  }

  /** The keys as the SDK's default chain reads them from the environment, for OS processes. */
  public static Map<String, String> environment() {
    return Map.of(
        "AWS_ACCESS_KEY_ID", S3Proxy.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", S3Proxy.SECRET_KEY);
  }

  /** Sets the keys as system properties (idempotent: every s3proxy has the same ones). */
  public static synchronized void credentialsForThisJvm() {
    System.setProperty("aws.accessKeyId", S3Proxy.ACCESS_KEY);
    System.setProperty("aws.secretAccessKey", S3Proxy.SECRET_KEY);
  }

  /**
   * Starts an s3proxy (a JVM start) on another thread while {@code setup} runs on this one, and
   * returns it once both are done; a failed setup closes the server before it is thrown.
   */
  public static S3Proxy startDuring(Setup setup) throws Exception {
    CompletableFuture<S3Proxy> proxy = CompletableFuture.supplyAsync(S3Proxy::start);
    try {
      setup.run();
    } catch (Exception | Error e) {
      proxy.whenComplete((s3, failure) -> closeQuietly(s3));
      throw e;
    }
    try {
      return proxy.join();
    } catch (CompletionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw e;
    }
  }

  private static void closeQuietly(S3Proxy s3) {
    if (s3 != null) {
      s3.close();
    }
  }
}
