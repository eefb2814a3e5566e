package io.zenith.page.redo;

import io.zenith.pg.PgDistribution;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * The scratch PostgreSQL cluster WAL-redo processes run on: the {@code zenith_walredo} module
 * extracted from the classpath, and a template data directory (initdb once, with the computes'
 * {@code --data-checksums} and {@code wal_log_hints}; the loop function created with the module's
 * name, found through {@code dynamic_library_path}; {@code pg_resetwal -l} to WAL position {@code
 * FFFF0000/0} so that no page LSN of a compute is ever beyond the scratch cluster's WAL), copied
 * from the {@link TemplateCache} when an earlier cluster built the same one. Each process gets its
 * own copy of the template ({@link #newProcessDirectory}), since a data directory takes one backend
 * at a time.
 *
 * <p>Layout under the root (a fresh directory in the given parent, deleted by {@link #close}):
 * {@code lib/zenith_walredo.so}, {@code template/}, {@code p-<n>/data} per process. When the JVM
 * runs as root the directories belong to PostgreSQL's OS user (see {@link PgDistribution}); the
 * parent must let that user through, and must not be mounted {@code noexec} (the module is loaded
 * with {@code dlopen}). Thread-safe.
 */
public final class ScratchCluster implements AutoCloseable {

  /** The classpath resource holding the module built by page-serving's Maven build. */
  public static final String LIBRARY_RESOURCE = "/native/linux-x86_64/zenith_walredo.so";

  /** Where {@code pg_resetwal -l} puts the scratch cluster's WAL: {@code FFFF0000/0}. */
  static final String FAR_FUTURE_WAL_SEGMENT = "00000001FFFF000000000000";

  private final PgDistribution pg;
  private final Path root;
  private final Path library;
  private final Path template;
  private final boolean dataChecksums;
  private final boolean walLogHints;
  private final AtomicLong processDirs = new AtomicLong();
  private final Optional<TemplateCache> cache;
  private volatile boolean fromCache;

  private ScratchCluster(
      PgDistribution pg,
      Path root,
      boolean dataChecksums,
      boolean walLogHints,
      Optional<TemplateCache> cache) {
    this.pg = pg;
    this.root = root;
    this.library = root.resolve("lib").resolve("zenith_walredo.so");
    this.template = root.resolve("template");
    this.dataChecksums = dataChecksums;
    this.walLogHints = walLogHints;
    this.cache = cache;
  }

  /**
   * Creates the scratch root in {@code parent} and the template cluster in it: a copy of the one in
   * {@code parent}'s {@link TemplateCache} when there is one, else built (a second or two: initdb,
   * one single-user run, pg_resetwal) and published there.
   *
   * @throws WalRedoException of kind {@code START_FAILED} when a step fails, with its output
   */
  public static ScratchCluster create(
      PgDistribution pg, Path parent, boolean dataChecksums, boolean walLogHints) {
    Path root;
    try {
      Files.createDirectories(parent);
      root = Files.createTempDirectory(parent, "zenith-walredo-");
    } catch (IOException e) {
      throw startFailed("cannot create a scratch directory in " + parent + ": " + e, e);
    }
    // before build() gives the root to PostgreSQL's user: the cache must be this process's own
    ScratchCluster c =
        new ScratchCluster(pg, root, dataChecksums, walLogHints, TemplateCache.in(parent, root));
    try {
      c.build();
      return c;
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
  }

  private void build() {
    try {
      pg.createOwnedDirectory(root);
      Path lib = library.getParent();
      Files.createDirectory(
          lib, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
      extractLibrary();
    } catch (IOException e) {
      throw startFailed("cannot prepare " + root + ": " + e, e);
    }
    String key = TemplateCache.key(pg, recipe());
    if (cache.isPresent() && cache.get().copyTo(key, template)) {
      fromCache = true;
      return;
    }
    List<String> initdb =
        new ArrayList<>(
            List.of(
                "-D",
                template.toString(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
                "--wal-segsize=1"));
    if (dataChecksums) {
      initdb.add("--data-checksums");
    }
    run("initdb", initdb, null);
    try {
      Files.writeString(template.resolve("postgresql.conf"), settings(), StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw startFailed("cannot configure the scratch template: " + e, e);
    }
    List<String> single = new ArrayList<>(List.of("--single"));
    single.addAll(backendOptions());
    single.addAll(List.of("-D", template.toString(), "postgres"));
    String out = run("postgres", single, TEMPLATE_SQL);
    if (out.contains("ERROR:") || out.contains("FATAL:")) {
      throw startFailed(
          "cannot create the zenith_walredo_loop function in the scratch template: " + out.strip(),
          null);
    }
    run("pg_resetwal", List.of("-l", FAR_FUTURE_WAL_SEGMENT, "-D", template.toString()), null);
    cache.ifPresent(tc -> tc.publish(key, template));
  }

  /**
   * One command per line (single-user mode). The module is named without a path: {@link
   * #backendOptions()} tells each backend where this cluster's copy is, so the template is the same
   * for every scratch root and can be cached. Dropping the template databases leaves a third of the
   * files to copy for each process; the backend only ever connects to "postgres".
   */
  private static final String TEMPLATE_SQL =
      "CREATE FUNCTION zenith_walredo_loop() RETURNS void AS 'zenith_walredo',"
          + " 'zenith_walredo_loop' LANGUAGE C;\n"
          + "UPDATE pg_database SET datistemplate = false"
          + " WHERE datname IN ('template0', 'template1');\n"
          + "DROP DATABASE template0;\n"
          + "DROP DATABASE template1;\n";

  /** What the template's bytes depend on besides the binaries: the cache key's input. */
  private String recipe() {
    return "scratch template v1\nchecksums="
        + dataChecksums
        + "\n"
        + settings()
        + TEMPLATE_SQL
        + "resetwal "
        + FAR_FUTURE_WAL_SEGMENT;
  }

  /**
   * The command-line options of every backend on this cluster (before {@code -D}): where to find
   * the module the loop function names.
   */
  List<String> backendOptions() {
    return List.of("-c", "dynamic_library_path=" + library.getParent());
  }

  /** Whether the template was copied from the {@link TemplateCache} rather than built. */
  boolean fromCache() {
    return fromCache;
  }

  private void extractLibrary() throws IOException {
    try (InputStream in = ScratchCluster.class.getResourceAsStream(LIBRARY_RESOURCE)) {
      if (in == null) {
        throw startFailed(
            "the zenith_walredo module is not on the classpath ("
                + LIBRARY_RESOURCE
                + "); page-serving's build compiles it (src/main/c)",
            null);
      }
      Files.copy(in, library, StandardCopyOption.REPLACE_EXISTING);
    }
    Files.setPosixFilePermissions(library, PosixFilePermissions.fromString("rwxr-xr-x"));
  }

  private String settings() {
    return "\n# zenith_walredo scratch cluster\n"
        + "wal_log_hints = "
        + (walLogHints ? "on" : "off")
        + "\n"
        + "fsync = off\n"
        + "shared_buffers = 32MB\n"
        + "max_connections = 5\n"
        + "max_wal_senders = 0\n"
        + "max_prepared_transactions = 0\n"
        + "autovacuum = off\n"
        + "huge_pages = off\n"
        // DSM segments as files in pg_dynshmem: a killed process leaves nothing in /dev/shm
        + "dynamic_shared_memory_type = mmap\n"
        + "log_checkpoints = off\n"
        + "logging_collector = off\n"
        + "log_min_messages = warning\n";
  }

  /** Runs a PostgreSQL program as the right OS user; returns stdout and stderr together. */
  private String run(String program, List<String> args, String stdin) {
    try {
      Path out = Files.createTempFile(root, "run-", ".out");
      try {
        ProcessBuilder pb =
            pg.processBuilder(program, args).redirectErrorStream(true).redirectOutput(out.toFile());
        if (stdin == null) {
          pb.redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        }
        pb.environment().put("LC_ALL", "C");
        Process p = pb.start();
        if (stdin != null) {
          try (var w = p.getOutputStream()) {
            w.write(stdin.getBytes(StandardCharsets.UTF_8));
          }
        }
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
          p.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
          p.destroyForcibly();
          throw startFailed(program + " did not finish within 120 s", null);
        }
        String output = Files.readString(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
          throw startFailed(
              program + " failed (exit " + p.exitValue() + "): " + output.strip(), null);
        }
        return output;
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw startFailed("cannot run " + program + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw startFailed("interrupted while running " + program, e);
    }
  }

  /**
   * A new directory for one process, holding {@code data}, a copy of the template with the same
   * owner and modes. The caller deletes it with {@link #deleteTree} when the process is gone.
   */
  Path newProcessDirectory() {
    Path dir = root.resolve("p-" + processDirs.incrementAndGet());
    pg.createOwnedDirectory(dir);
    Path data = dir.resolve("data");
    try {
      copyTree(template, data);
    } catch (IOException e) {
      deleteTree(dir);
      throw startFailed("cannot copy the scratch template to " + data + ": " + e, e);
    }
    return dir;
  }

  /** Copies {@code from} to {@code to} (which must not exist) with owners and modes. */
  static void copyTree(Path from, Path to) throws IOException {
    Files.walkFileTree(
        from,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs)
              throws IOException {
            Files.copy(
                d,
                to.resolve(from.relativize(d).toString()),
                StandardCopyOption.COPY_ATTRIBUTES,
                LinkOption.NOFOLLOW_LINKS);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
            Files.copy(
                f,
                to.resolve(from.relativize(f).toString()),
                StandardCopyOption.COPY_ATTRIBUTES,
                LinkOption.NOFOLLOW_LINKS);
            return FileVisitResult.CONTINUE;
          }
        });
  }

  public PgDistribution distribution() {
    return pg;
  }

  /** The scratch root (deleted by {@link #close}). */
  public Path root() {
    return root;
  }

  /** The extracted module, which {@link #backendOptions()} lets the loop function find. */
  public Path library() {
    return library;
  }

  public boolean dataChecksums() {
    return dataChecksums;
  }

  public boolean walLogHints() {
    return walLogHints;
  }

  /** Deletes the scratch root with everything in it. Processes must be gone. */
  @Override
  public void close() {
    deleteTree(root);
  }

  static void deleteTree(Path dir) {
    if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(dir)) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot delete " + dir + ": " + e.getMessage(), e);
    }
  }

  private static WalRedoException startFailed(String message, Throwable cause) {
    return new WalRedoException(WalRedoException.Kind.START_FAILED, message, cause);
  }
}
