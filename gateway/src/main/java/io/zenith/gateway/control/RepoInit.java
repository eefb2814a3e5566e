package io.zenith.gateway.control;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.gateway.pageserver.RootTimeline;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.layer.RemoteIndex;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;

/**
 * {@code zenith init}: a new repository whose pageserver holds one tenant with timeline {@code
 * main}, imported from a fresh {@code initdb} (stock PostgreSQL 15, data checksums on) at its
 * shutdown checkpoint. The pageserver does not run during init: the import writes its layer store
 * directly. A failed init leaves nothing behind.
 */
public final class RepoInit {
  private RepoInit() {}

  /** Safekeepers of a repository unless told otherwise. */
  public static final int DEFAULT_SAFEKEEPERS = 1;

  /** Safekeeper {@code i} (from 1) listens on HTTP base + 2(i-1) and libpq base + 2(i-1) + 1. */
  public static final int DEFAULT_SAFEKEEPER_PORT_BASE = 7676;

  /**
   * What {@code init} may be told; null fields take the defaults.
   *
   * @param safekeepers how many safekeepers, 0 to {@link RepoConfig#MAX_SAFEKEEPERS} (0: the
   *     pageserver streams from computes directly)
   * @param safekeeperPortBase the first of the 2 × safekeepers ports they listen on
   * @param remote the services' remote storage (null: the directory {@link #REMOTE_DIR} of the
   *     repository)
   */
  public record Options(
      String listenHttp,
      String listenPg,
      Integer computePortBase,
      String pgOsUser,
      Integer safekeepers,
      Integer safekeeperPortBase,
      boolean auth,
      @Nullable RemoteStorageConfig remote) {

    /** The options with the default remote storage ({@link #REMOTE_DIR}). */
    public Options(
        String listenHttp,
        String listenPg,
        Integer computePortBase,
        String pgOsUser,
        Integer safekeepers,
        Integer safekeeperPortBase,
        boolean auth) {
      this(
          listenHttp,
          listenPg,
          computePortBase,
          pgOsUser,
          safekeepers,
          safekeeperPortBase,
          auth,
          null);
    }
  }

  /**
   * The repository's own remote storage unless told otherwise: a local directory, so that a laptop
   * has bottomless storage without configuration.
   */
  public static final String REMOTE_DIR = "remote";

  /** The addresses of {@code count} safekeepers on consecutive ports from {@code base}. */
  static List<RepoConfig.SafekeeperAddresses> safekeeperAddresses(int count, int base) {
    List<RepoConfig.SafekeeperAddresses> out = new java.util.ArrayList<>();
    for (int i = 1; i <= count; i++) {
      int http = base + 2 * (i - 1);
      out.add(
          new RepoConfig.SafekeeperAddresses(i, "127.0.0.1:" + http, "127.0.0.1:" + (http + 1)));
    }
    return out;
  }

  /**
   * Creates the repository; the repository's lock is held from before anything is written (another
   * init or command holding it: refused, nothing changed) until the repository is complete.
   */
  public static Repository run(Path dir, Options options, PrintWriter out) throws IOException {
    return run(dir, options, out, RepoInit::initdbAndImport);
  }

  /** {@link #run} with the pageserver's tenants from {@code populate}. */
  @SuppressWarnings("try") // the lock is held, not used
  static Repository run(Path dir, Options options, PrintWriter out, Populate populate)
      throws IOException {
    // A directory with files but no lock file cannot be held by anyone: refused without a lock
    // file left behind. One with a lock file is locked first, so that an init under way is named.
    if (Files.exists(dir) && !Files.exists(dir.resolve(Repository.LOCK_FILE))) {
      checkEmpty(dir);
    }
    PageserverConfig psConfig =
        new PageserverConfig(
                options.listenHttp(),
                options.listenPg(),
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                true)
            .withDefaults();
    RemoteStorageConfig remote =
        options.remote() != null
            ? options.remote()
            : RemoteStorageConfig.local(dir.resolve(REMOTE_DIR).toAbsolutePath().normalize());
    try {
      psConfig.validate();
      remote.settings(dir);
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(e.getMessage());
    }
    int skCount = options.safekeepers() == null ? DEFAULT_SAFEKEEPERS : options.safekeepers();
    int skBase =
        options.safekeeperPortBase() == null
            ? DEFAULT_SAFEKEEPER_PORT_BASE
            : options.safekeeperPortBase();
    List<RepoConfig.SafekeeperAddresses> safekeepers = safekeeperAddresses(skCount, skBase);
    for (RepoConfig.SafekeeperAddresses a : safekeepers) {
      for (String own : List.of(a.listenHttp(), a.listenPg())) {
        if (own.equals(psConfig.listenHttp()) || own.equals(psConfig.listenPg())) {
          throw new ControlPlaneException(
              "safekeeper "
                  + a.id()
                  + " would listen on "
                  + own
                  + ", which the pageserver uses; choose another --safekeeper-port-base");
        }
      }
    }
    PgDistribution pg = PgDistribution.detect(options.pgOsUser());
    boolean created = !Files.exists(dir);
    Files.createDirectories(dir);
    // Refused: the directory is left as it is, to whoever holds it.
    try (Repository.Lock lock = Repository.lock(dir)) {
      checkEmpty(dir);
      return create(dir, created, options, psConfig, remote, safekeepers, pg, out, populate);
    }
  }

  /**
   * What fills a new repository once its directories and the services' configurations exist: initdb
   * and its import ({@code init}), or a restore from remote storage ({@code init --from-remote},
   * {@link RepoRestore}). It writes the names files; {@code create} writes {@code config.toml}
   * last.
   */
  interface Populate {
    /**
     * @param configFor the repository's configuration once its first tenant is known
     * @return the repository's first tenant
     */
    TenantId populate(
        Path dir,
        Path psDir,
        PageserverConfig psConfig,
        PgDistribution pg,
        Function<TenantId, RepoConfig> configFor,
        PrintWriter out)
        throws IOException;
  }

  /** Refuses a directory with anything but the repository's lock file in it. */
  private static void checkEmpty(Path dir) throws IOException {
    boolean empty;
    try (Stream<Path> s = Files.list(dir)) {
      empty = s.allMatch(p -> p.getFileName().toString().equals(Repository.LOCK_FILE));
    } catch (java.nio.file.NotDirectoryException e) {
      empty = false;
    }
    if (!empty) {
      throw new ControlPlaneException(
          "a repository already exists at " + dir + " (remove it to start over)");
    }
  }

  private static Repository create(
      Path dir,
      boolean created,
      Options options,
      PageserverConfig psConfig,
      RemoteStorageConfig remote,
      List<RepoConfig.SafekeeperAddresses> safekeepers,
      PgDistribution pg,
      PrintWriter out,
      Populate populate)
      throws IOException {
    boolean ok = false;
    try {
      Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
      Path computes = dir.resolve("computes");
      Files.createDirectory(computes);
      Files.setPosixFilePermissions(computes, PosixFilePermissions.fromString("rwxr-xr-x"));
      Path psDir = dir.resolve("pageserver");
      Files.createDirectory(psDir);
      if (options.auth()) {
        // Before the services' configurations that name the public key.
        RepoAuth.generate(dir);
        psConfig =
            psConfig.withAuth(true, RepoAuth.publicKeyPathFrom(dir, psDir), RepoAuth.SERVICE_TOKEN);
      }
      if (remote.localPath() != null) {
        DurableFiles.createDirectories(Path.of(remote.localPath()));
      }
      // The configuration populate gets is the one written: with remote storage, where
      // generations are issued (ADR 0026) and a restore reads from (ADR 0029).
      psConfig = psConfig.withRemoteStorage(remote.relativeTo(psDir));
      psConfig.write(psDir);
      Safekeepers.createDataDirs(dir.resolve("safekeepers"), safekeepers, options.auth(), remote);

      Path computeData = computes;
      if (pg.osUser().isPresent() && !Repository.traversableBy(computes, pg.osUser().get())) {
        computeData =
            Path.of(System.getProperty("java.io.tmpdir"), "zenith-computes-" + shortHash(dir));
        out.println(
            "note: PostgreSQL's OS user '"
                + pg.osUser().get()
                + "' cannot reach "
                + computes
                + "; compute data directories go to "
                + computeData
                + " (compute_data_dir in config.toml)");
      }
      Files.createDirectories(computeData);
      Files.setPosixFilePermissions(computeData, PosixFilePermissions.fromString("rwxr-xr-x"));

      Path computeDataDir = computeData;
      PageserverConfig finalPsConfig = psConfig;
      Function<TenantId, RepoConfig> configFor =
          tenant ->
              new RepoConfig(
                  tenant.toString(),
                  options.pgOsUser(),
                  options.computePortBase() == null
                      ? RepoConfig.DEFAULT_COMPUTE_PORT_BASE
                      : options.computePortBase(),
                  computeDataDir.toAbsolutePath().toString(),
                  new RepoConfig.PageserverAddresses(
                      finalPsConfig.listenHttp(), finalPsConfig.listenPg()),
                  safekeepers);
      TenantId first = populate.populate(dir, psDir, psConfig, pg, configFor, out);
      RepoConfig config = configFor.apply(first);
      config.write(dir); // last: a repository with config.toml is complete
      ok = true;
      // No names object in remote storage yet (ADR 0029): a restore names a tenant without one as
      // init does (the first tenant "default", its only root "main"), and init keeps not needing
      // remote storage to answer. The first change of the names writes it.
      return Repository.open(dir);
    } finally {
      if (!ok && created) {
        Basebackups.deleteTree(dir);
      } else if (!ok) {
        // The directory was there (empty, or with the lock file alone): empty it again.
        try (Stream<Path> s = Files.list(dir)) {
          for (Path p : s.toList()) {
            if (!p.getFileName().toString().equals(Repository.LOCK_FILE)) {
              Basebackups.deleteTree(p);
            }
          }
        }
      }
    }
  }

  /** {@code init}: the first tenant's branch main from a fresh initdb, imported directly. */
  @SuppressWarnings("try") // the pageserver's directory lock is held, not used
  private static TenantId initdbAndImport(
      Path dir,
      Path psDir,
      PageserverConfig psConfig,
      PgDistribution pg,
      Function<TenantId, RepoConfig> configFor,
      PrintWriter out)
      throws IOException {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();

    out.print(
        "running initdb (PostgreSQL "
            + PgDistribution.SUPPORTED_MAJOR
            + pg.osUser().map(u -> ", as " + u).orElse("")
            + ") ...");
    out.flush();
    long t0 = System.nanoTime();
    DatadirImport.Result imported;
    // The same initdb and import as every later tenant's (RootTimeline), here into the layer
    // store directly: the pageserver does not run during init.
    try (RootTimeline.Initdb db = initdb(pg, out)) {
      out.printf(Locale.ROOT, " done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
      out.print("importing it into the pageserver as branch main ...");
      out.flush();
      t0 = System.nanoTime();
      try (DirectoryLock psLock = DirectoryLock.acquire(psDir, Pageserver.LOCK_FILE);
          LayerStore store = LayerStore.open(psDir, psConfig.layerStoreConfig())) {
        // Generation 1 without a record, as init always made it: init does not need remote
        // storage to answer, and the first generation issued later is 2 (ADR 0026's rule for
        // objects of generation 1 without a record).
        store.createTenant(tenant, RemoteIndex.DEFAULT_GENERATION);
        imported = RootTimeline.importInto(store, tenant, main, db);
      }
    }
    out.printf(
        Locale.ROOT,
        " %d relations, %d pages at LSN %s in %.1f s%n",
        imported.relations(),
        imported.pages(),
        imported.lsn(),
        (System.nanoTime() - t0) / 1e9);

    new Branches(Map.of(Branches.DEFAULT_BRANCH, main)).write(dir);
    new Tenants(Map.of(Tenants.FIRST_TENANT, tenant)).write(dir);
    return tenant;
  }

  /** initdb, its failure a {@link ControlPlaneException} (after " failed" on the progress line). */
  private static RootTimeline.Initdb initdb(PgDistribution pg, PrintWriter out) throws IOException {
    try {
      return RootTimeline.initdb(pg);
    } catch (RootTimeline.InitdbException e) {
      out.println(" failed");
      throw new ControlPlaneException(e.getMessage());
    }
  }

  private static String shortHash(Path dir) {
    try {
      byte[] h =
          MessageDigest.getInstance("SHA-256")
              .digest(dir.toAbsolutePath().toString().getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(h, 0, 6);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
