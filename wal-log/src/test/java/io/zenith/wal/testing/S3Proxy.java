package io.zenith.wal.testing;

import io.zenith.wal.remote.S3Settings;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real S3-compatible server for tests: s3proxy ({@code org.gaul:s3proxy}) with its filesystem
 * backend, run as its own {@code java -jar} process on a free loopback port (ADR 0022). The bucket
 * {@link #BUCKET} exists from the start; its objects are files under a temporary directory, so they
 * survive {@link #stop()} and {@link #restart()} (fault tests) and go with {@link #close()}.
 *
 * <p>The jar is the one Maven copies into {@code wal-log/target/s3proxy/s3proxy.jar} (phase
 * generate-test-resources), or the file named by the system property {@code zenith.s3proxy.jar}.
 * Every wait is bounded: a server that does not answer within {@link #START_TIMEOUT} fails the
 * start with the tail of its log. A JVM shutdown hook kills a server a test forgot. Not
 * thread-safe.
 */
public final class S3Proxy implements AutoCloseable {
  public static final String BUCKET = "zenith-test";
  public static final String ACCESS_KEY = "zenith-test-key";
  public static final String SECRET_KEY = "zenith-test-secret";
  public static final Duration START_TIMEOUT = Duration.ofSeconds(60);

  private final Path dir;
  private final Path jar;
  private final int port;
  private final Thread killer;
  private Process process;

  private S3Proxy(Path dir, Path jar, int port) {
    this.dir = dir;
    this.jar = jar;
    this.port = port;
    this.killer = new Thread(this::kill, "s3proxy-killer");
    Runtime.getRuntime().addShutdownHook(killer);
  }

  /** Starts a server with an empty bucket in a new temporary directory. */
  public static S3Proxy start() {
    Path jar = jar();
    try {
      Path dir = Files.createTempDirectory("zenith-s3proxy-");
      Files.createDirectories(dir.resolve("data").resolve(BUCKET)); // the filesystem backend's
      // bucket is a directory
      S3Proxy p = new S3Proxy(dir, jar, freePort());
      try {
        p.launch();
      } catch (RuntimeException e) {
        p.close();
        throw e;
      }
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** s3proxy's jar: {@code zenith.s3proxy.jar}, or the one the wal-log build copies. */
  public static Path jar() {
    String explicit = System.getProperty("zenith.s3proxy.jar");
    Path root = Path.of(System.getProperty("zenith.project.root", "."));
    Path jar =
        explicit != null
            ? Path.of(explicit)
            : root.resolve("wal-log").resolve("target").resolve("s3proxy").resolve("s3proxy.jar");
    if (!Files.isRegularFile(jar)) {
      throw new IllegalStateException(
          "s3proxy's jar is not at "
              + jar
              + ": build wal-log's test resources (./mvnw -pl wal-log generate-test-resources)"
              + " or set -Dzenith.s3proxy.jar");
    }
    return jar;
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  private void launch() {
    try {
      Path conf = dir.resolve("s3proxy.conf");
      Files.writeString(
          conf,
          String.join(
              "\n",
              "s3proxy.endpoint=" + endpoint(),
              "s3proxy.authorization=aws-v2-or-v4",
              "s3proxy.identity=" + ACCESS_KEY,
              "s3proxy.credential=" + SECRET_KEY,
              "jclouds.provider=filesystem",
              "jclouds.filesystem.basedir=" + dir.resolve("data"),
              ""),
          StandardCharsets.UTF_8);
      String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
      ProcessBuilder pb =
          new ProcessBuilder(
                  List.of(
                      java,
                      "-Xmx256m",
                      "-XX:+UseSerialGC",
                      "-XX:TieredStopAtLevel=1", // a test server: C2 would cost the tests' CPU
                      "-Xshare:auto",
                      "-jar",
                      jar.toString(),
                      "--properties",
                      conf.toString()))
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.appendTo(log().toFile()));
      pb.environment().put("LOG_LEVEL", "warn");
      process = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (!answers()) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "s3proxy exited with " + process.exitValue() + " at start: " + logTail());
      }
      if (System.nanoTime() > deadline) {
        kill();
        throw new IllegalStateException(
            "s3proxy did not answer on "
                + endpoint()
                + " within "
                + START_TIMEOUT
                + ": "
                + logTail());
      }
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        kill();
        throw new IllegalStateException("interrupted while s3proxy started", e);
      }
    }
  }

  /** Whether the server answers HTTP at all (an anonymous request gets a 403). */
  private boolean answers() {
    try {
      HttpURLConnection c = (HttpURLConnection) endpoint().toURL().openConnection();
      c.setConnectTimeout(500);
      c.setReadTimeout(2000);
      try {
        return c.getResponseCode() > 0;
      } finally {
        c.disconnect();
      }
    } catch (IOException e) {
      return false;
    }
  }

  public URI endpoint() {
    return URI.create("http://127.0.0.1:" + port);
  }

  public Path log() {
    return dir.resolve("s3proxy.log");
  }

  /** The bucket's objects on disk (for tests that look behind the API). */
  public Path bucketDirectory() {
    return dir.resolve("data").resolve(BUCKET);
  }

  public S3Settings.Credentials credentials() {
    return new S3Settings.Credentials(ACCESS_KEY, SECRET_KEY);
  }

  /** Settings for this server's bucket under {@code prefix}, path-style, with its keys. */
  public S3Settings settings(String prefix) {
    return S3Settings.of(BUCKET, prefix, endpoint(), S3Settings.DEFAULT_REGION, true)
        .withCredentials(credentials());
  }

  public boolean running() {
    return process != null && process.isAlive();
  }

  /** Kills the server (SIGKILL, as a crash); its objects stay. */
  public void stop() {
    kill();
  }

  /** Stops the server's process (SIGSTOP): connections open, nothing answered. */
  public void pause() {
    signal("STOP");
  }

  /** Resumes a paused server (SIGCONT). */
  public void resume() {
    signal("CONT");
  }

  private void signal(String name) {
    try {
      // the shell's kill: procps is not in every image (conventions.md)
      Process k =
          new ProcessBuilder("sh", "-c", "kill -" + name + " " + process.pid())
              .redirectErrorStream(true)
              .start();
      if (!k.waitFor(10, TimeUnit.SECONDS) || k.exitValue() != 0) {
        throw new IllegalStateException("kill -" + name + " " + process.pid() + " failed");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Starts the server again on the same port with the same objects. */
  public void restart() {
    kill();
    launch();
  }

  private void kill() {
    Process p = process;
    if (p != null && p.isAlive()) {
      p.destroyForcibly(); // SIGKILL ends a stopped process too
      try {
        if (!p.waitFor(10, TimeUnit.SECONDS)) {
          throw new IllegalStateException(
              "s3proxy (pid " + p.pid() + ") outlived SIGKILL for 10 s");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private String logTail() {
    try {
      List<String> lines = Files.readAllLines(log(), StandardCharsets.UTF_8);
      return String.join(" | ", lines.subList(Math.max(0, lines.size() - 10), lines.size()));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  /** Stops the server and deletes its objects and log. */
  @Override
  public void close() {
    kill();
    try {
      Runtime.getRuntime().removeShutdownHook(killer);
    } catch (IllegalStateException shuttingDown) {
      // the hook runs anyway
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
