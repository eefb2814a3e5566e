package io.zenith.gateway.cli;

import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.ingest.DatadirImport.ImportException;
import io.zenith.layer.LayerStoreException;
import io.zenith.pg.PgSetupException;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code zenith} executable. Every Zenith process and tool is a subcommand of it.
 *
 * <p>Errors a user can cause (bad arguments, bad input files, a missing PostgreSQL) end the command
 * with one line on stderr and a non-zero exit: 2 for usage errors, 1 for everything else. Set
 * {@code ZENITH_DEBUG=1} to also get stack traces. A failed fsync ({@link FsyncFailedException}) is
 * one such line too, exit 1: the command is not retried.
 */
@Command(
    name = "zenith",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "Zenith: PostgreSQL storage separated from compute.",
    subcommands = {
      InitCommand.class,
      StartCommand.class,
      StopCommand.class,
      StatusCommand.class,
      PageserverCommand.class,
      SafekeeperCommand.class,
      PgCommand.class,
      ComputeCommand.class,
      BranchCommand.class,
      ExportCommand.class,
      SnapshotCommand.class,
      TenantCommand.class,
      TimelineCommand.class,
      LayerCommand.class,
      WalCommand.class,
      AuthCommand.class,
      CommandLine.HelpCommand.class
    })
public final class Main implements Runnable {

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  public static void main(String[] args) {
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    int code = run(args, out, System.err);
    out.flush();
    System.exit(code);
  }

  /** Runs a command line; returns the exit code. Used by {@link #main} and by tests. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    CommandLine cl = commandLine();
    PrintWriter o = new PrintWriter(out, true, StandardCharsets.UTF_8);
    PrintWriter e = new PrintWriter(err, true, StandardCharsets.UTF_8);
    cl.setOut(o);
    cl.setErr(e);
    try {
      return cl.execute(args);
    } catch (FsyncFailedException ex) {
      // Not retried, and not an internal error: the disk failed (an Error, so picocli passes it).
      e.println(
          commandName(cl)
              + ": error: "
              + ex.getMessage()
              + "; what was written since its last successful fsync may be lost");
      return 1;
    } finally {
      o.flush();
      e.flush();
    }
  }

  /** The qualified name of the (sub)command a command line ran, e.g. {@code zenith export}. */
  private static String commandName(CommandLine cl) {
    CommandLine.ParseResult r = cl.getParseResult();
    if (r == null) {
      return cl.getCommandSpec().qualifiedName(" ");
    }
    while (r.subcommand() != null) {
      r = r.subcommand();
    }
    return r.commandSpec().qualifiedName(" ");
  }

  static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Main());
    cl.registerConverter(Lsn.class, Main::parseLsn);
    cl.setExecutionExceptionHandler(Main::handleError);
    cl.setParameterExceptionHandler(Main::handleUsageError);
    return cl;
  }

  private static Lsn parseLsn(String text) {
    try {
      return Lsn.parse(text);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.TypeConversionException(e.getMessage());
    }
  }

  private static int handleUsageError(CommandLine.ParameterException ex, String[] args) {
    CommandLine cmd = ex.getCommandLine();
    String name = cmd.getCommandSpec().qualifiedName(" ");
    cmd.getErr().println(name + ": error: " + ex.getMessage());
    cmd.getErr().println("Try '" + name + " --help' for more information.");
    cmd.getErr().flush();
    return cmd.getCommandSpec().exitCodeOnInvalidInput();
  }

  private static int handleError(
      Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
    String name = cmd.getCommandSpec().qualifiedName(" ");
    String message =
        switch (ex) {
          case WalFormatException w -> w.describe();
          case NoSuchFileException n -> "no such file: " + n.getFile();
          case UncheckedIOException u -> u.getMessage();
          case IOException io -> io.getMessage();
          case PgSetupException p -> p.getMessage();
          case UserException u -> u.getMessage();
          case ControlPlaneException c -> c.getMessage();
          case JsonHttpClient.ApiError a -> a.getMessage();
          case JsonHttpClient.Unavailable u -> u.getMessage();
          case LayerStoreException l -> l.getMessage();
          case ImportException i -> i.getMessage();
          default -> "internal error: " + ex;
        };
    // one line, whatever a library put into its message
    message = message.strip().replaceAll("\\s*\\R\\s*", " ");
    cmd.getErr().println(name + ": error: " + message);
    if (System.getenv("ZENITH_DEBUG") != null
        || !(ex instanceof WalFormatException
            || ex instanceof IOException
            || ex instanceof UncheckedIOException
            || ex instanceof PgSetupException
            || ex instanceof UserException
            || ex instanceof ControlPlaneException
            || ex instanceof JsonHttpClient.ApiError
            || ex instanceof JsonHttpClient.Unavailable
            || ex instanceof LayerStoreException
            || ex instanceof ImportException)) {
      ex.printStackTrace(cmd.getErr());
    }
    cmd.getErr().flush();
    return 1;
  }

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** Zenith's version as the build stamped it (zenith-version.properties), else "dev". */
  public static String version() {
    return BuildInfo.VALUES.getProperty("version", "dev");
  }

  /**
   * The git commit Zenith was built from (12 hex digits), or "unknown": built without a git
   * repository (a source tarball), or run from unfiltered classes.
   */
  public static String commit() {
    return BuildInfo.VALUES.getProperty("commit", "unknown");
  }

  /**
   * zenith-version.properties (the version, filtered by Maven) and zenith-commit.properties (the
   * commit, written by gateway/src/main/build/git-commit.sh), read once; a value the build did not
   * fill in is left out.
   */
  private static final class BuildInfo {
    static final java.util.Properties VALUES = load();

    private static java.util.Properties load() {
      java.util.Properties p = new java.util.Properties();
      for (String file : new String[] {"/zenith-version.properties", "/zenith-commit.properties"}) {
        try (var in = Main.class.getResourceAsStream(file)) {
          if (in != null) {
            p.load(in);
          }
        } catch (IOException e) {
          // no version information: "dev", "unknown"
        }
      }
      p.entrySet()
          .removeIf(
              e -> e.getValue().toString().isBlank() || e.getValue().toString().startsWith("${"));
      return p;
    }
  }

  /** {@code zenith <version> (git <commit>, PostgreSQL 15)}. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      return new String[] {"zenith " + version() + " (git " + commit() + ", PostgreSQL 15)"};
    }
  }
}
