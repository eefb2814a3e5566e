package io.zenith.pg;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.nio.file.attribute.UserPrincipalLookupService;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A PostgreSQL 15 installation: where its programs are, and how to run them.
 *
 * <p>PostgreSQL refuses to run as root. When this JVM runs as root, every PostgreSQL program is
 * started through {@code runuser} as an unprivileged OS user ({@code $ZENITH_PG_OS_USER}, default
 * {@code postgres}, which Debian's packages create), and directories handed to PostgreSQL are given
 * to that user. As any other user, programs run directly.
 *
 * <p>The installation is found from {@code $ZENITH_PG_BIN} (a bin directory), else {@code pg_config
 * --bindir}, else Debian's {@code /usr/lib/postgresql/15/bin}. Immutable and thread-safe.
 */
public final class PgDistribution {

  /** The major version Zenith speaks (WAL format, control file, page layout). */
  public static final int SUPPORTED_MAJOR = 15;

  private static final Path DEBIAN_BIN = Path.of("/usr/lib/postgresql/15/bin");
  private static final List<Path> RUNUSER =
      List.of(Path.of("/usr/sbin/runuser"), Path.of("/sbin/runuser"));

  private final Path binDir;
  private final String osUser;
  private final Path runuser;

  private PgDistribution(Path binDir, String osUser, Path runuser) {
    this.binDir = binDir;
    this.osUser = osUser;
    this.runuser = runuser;
  }

  /**
   * Finds the installation as described in the class comment and checks it is PostgreSQL 15.
   *
   * @throws PgSetupException with one readable sentence when no usable installation is found
   */
  public static PgDistribution detect() {
    return detect(null);
  }

  /**
   * As {@link #detect()}, with the OS user to run PostgreSQL programs as when this JVM is root
   * ({@code null}: {@code $ZENITH_PG_OS_USER}, else {@code postgres}). The control plane passes the
   * user its repository configuration names.
   */
  public static PgDistribution detect(String osUser) {
    String env = System.getenv("ZENITH_PG_BIN");
    Path bin;
    if (env != null && !env.isBlank()) {
      bin = Path.of(env);
    } else {
      bin =
          pgConfigBindir()
              .filter(p -> Files.isExecutable(p.resolve("postgres")))
              .orElse(DEBIAN_BIN);
    }
    return at(bin, osUser);
  }

  /** The installation in {@code binDir}, checked to be PostgreSQL 15. */
  public static PgDistribution at(Path binDir) {
    return at(binDir, null);
  }

  /** As {@link #at(Path)}, running programs as {@code osUser} when root (null: the default). */
  public static PgDistribution at(Path binDir, String osUser) {
    if (!Files.isExecutable(binDir.resolve("postgres"))) {
      throw new PgSetupException(
          "PostgreSQL "
              + SUPPORTED_MAJOR
              + " not found in "
              + binDir
              + " (install Debian's postgresql-15 or set ZENITH_PG_BIN to its bin directory)");
    }
    String user = null;
    Path runuser = null;
    if (runningAsRoot()) {
      user =
          Optional.ofNullable(osUser)
              .filter(s -> !s.isBlank())
              .or(() -> Optional.ofNullable(System.getenv("ZENITH_PG_OS_USER")))
              .filter(s -> !s.isBlank())
              .orElse("postgres");
      runuser =
          RUNUSER.stream()
              .filter(Files::isExecutable)
              .findFirst()
              .orElseThrow(
                  () ->
                      new PgSetupException(
                          "running as root, but runuser (util-linux) is not installed"));
    }
    PgDistribution d = new PgDistribution(binDir, user, runuser);
    int major = d.majorVersion();
    if (major != SUPPORTED_MAJOR) {
      throw new PgSetupException(
          binDir + " holds PostgreSQL " + major + "; Zenith needs PostgreSQL " + SUPPORTED_MAJOR);
    }
    return d;
  }

  private static Optional<Path> pgConfigBindir() {
    try {
      Process p = new ProcessBuilder("pg_config", "--bindir").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0 && !out.isEmpty()
          ? Optional.of(Path.of(out))
          : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Optional.empty();
    }
  }

  /** True when this process's effective user is root (PostgreSQL must then run as another). */
  public static boolean runningAsRoot() {
    try {
      return ((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0;
    } catch (IOException | UnsupportedOperationException e) {
      return "root".equals(System.getProperty("user.name"));
    }
  }

  public Path binDir() {
    return binDir;
  }

  /** Path of a program of the installation, e.g. {@code bin("pg_waldump")}. */
  public Path bin(String program) {
    return binDir.resolve(program);
  }

  /** The OS user PostgreSQL programs run as, when it is not this process's user. */
  public Optional<String> osUser() {
    return Optional.ofNullable(osUser);
  }

  /** The command line that runs {@code program} with {@code args} as the right OS user. */
  public List<String> command(String program, List<String> args) {
    return command(bin(program), args);
  }

  /**
   * The command line that runs {@code executable} with {@code args} as the right OS user: for
   * programs of the installation outside {@link #binDir()}, such as PGXS's {@code pg_regress}.
   */
  public List<String> command(Path executable, List<String> args) {
    List<String> cmd = new ArrayList<>();
    if (osUser != null) {
      cmd.add(runuser.toString());
      cmd.add("-u");
      cmd.add(osUser);
      cmd.add("--");
    }
    cmd.add(executable.toString());
    cmd.addAll(args);
    return cmd;
  }

  public ProcessBuilder processBuilder(String program, List<String> args) {
    return new ProcessBuilder(command(program, args));
  }

  /** The major version reported by {@code postgres --version}. */
  public int majorVersion() {
    try {
      Process p =
          new ProcessBuilder(bin("postgres").toString(), "--version")
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      p.waitFor(30, TimeUnit.SECONDS);
      Matcher m = Pattern.compile("\\(PostgreSQL\\) (\\d+)").matcher(out);
      if (!m.find()) {
        throw new PgSetupException(
            "cannot tell the version of " + bin("postgres") + ": " + out.trim());
      }
      return Integer.parseInt(m.group(1));
    } catch (IOException e) {
      throw new PgSetupException("cannot run " + bin("postgres") + ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new PgSetupException("interrupted while checking the PostgreSQL version");
    }
  }

  /**
   * Creates {@code dir} (and missing parents) so that PostgreSQL programs can own it: with mode
   * 0700 and, when running as root, owned by {@link #osUser()}. Parents created here get 0755 so
   * the PostgreSQL user can traverse them.
   */
  public void createOwnedDirectory(Path dir) {
    try {
      Path parent = dir.toAbsolutePath().getParent();
      if (parent != null && !Files.exists(parent)) {
        Files.createDirectories(
            parent,
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
      }
      if (!Files.exists(dir)) {
        Files.createDirectory(dir);
      }
      Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
      giveToPgUser(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create " + dir + ": " + e.getMessage(), e);
    }
  }

  /** Hands an existing file or directory to {@link #osUser()} (no-op when not root). */
  public void giveToPgUser(Path path) throws IOException {
    if (osUser == null) {
      return;
    }
    UserPrincipalLookupService lookup = path.getFileSystem().getUserPrincipalLookupService();
    UserPrincipal user;
    try {
      user = lookup.lookupPrincipalByName(osUser);
    } catch (IOException e) {
      throw new PgSetupException(
          "running as root, but the OS user '"
              + osUser
              + "' for PostgreSQL does not exist"
              + " (create it, or set ZENITH_PG_OS_USER to an unprivileged user)");
    }
    PosixFileAttributeView view = Files.getFileAttributeView(path, PosixFileAttributeView.class);
    view.setOwner(user);
    try {
      GroupPrincipal group = lookup.lookupPrincipalByGroupName(osUser);
      view.setGroup(group);
    } catch (IOException e) {
      // a user without a same-named group keeps root's group; ownership is what PostgreSQL checks
    }
  }

  @Override
  public String toString() {
    return "PostgreSQL "
        + SUPPORTED_MAJOR
        + " at "
        + binDir
        + (osUser == null ? "" : " (run as " + osUser + ")");
  }
}
