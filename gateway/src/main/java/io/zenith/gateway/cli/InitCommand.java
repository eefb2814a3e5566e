package io.zenith.gateway.cli;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.RepoInit;
import io.zenith.gateway.control.RepoRestore;
import io.zenith.gateway.control.Repository;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code zenith init}: a new repository with branch main imported from initdb. */
@Command(
    name = "init",
    mixinStandardHelpOptions = true,
    description = {
      "Create a repository (./.zenith or $ZENITH_REPO_DIR): run initdb (PostgreSQL 15) once and"
          + " import it into the pageserver as branch main of a new tenant, and set up the"
          + " safekeepers' data directories.",
      "Refuses to overwrite an existing repository."
    })
final class InitCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--pageserver-http",
      paramLabel = "HOST:PORT",
      description = "Pageserver management API address (default 127.0.0.1:9898).")
  String http;

  @Option(
      names = "--pageserver-pg",
      paramLabel = "HOST:PORT",
      description = "Pageserver libpq address (default 127.0.0.1:64000).")
  String pg;

  @Option(
      names = "--compute-port-base",
      paramLabel = "PORT",
      description = "First port computes get (default 55432).")
  Integer portBase;

  @Option(
      names = "--pg-os-user",
      paramLabel = "USER",
      description =
          "OS user PostgreSQL runs as when zenith runs as root (default $ZENITH_PG_OS_USER or"
              + " postgres).")
  String pgOsUser;

  @Option(
      names = "--safekeepers",
      paramLabel = "N",
      description =
          "Number of safekeepers, 0 to 7 (default 1; 3 tolerates one failure). A primary's commits"
              + " wait for a majority of them; 0 makes the pageserver the computes' synchronous"
              + " standby instead.")
  Integer safekeepers;

  @Option(
      names = "--safekeeper-port-base",
      paramLabel = "PORT",
      description =
          "Safekeeper i listens on HTTP PORT+2(i-1) and libpq PORT+2(i-1)+1 on 127.0.0.1"
              + " (default 7676).")
  Integer safekeeperPortBase;

  @Option(
      names = "--no-auth",
      description =
          "Generate no key pair: the pageserver and the safekeepers accept every request without"
              + " a token (they warn about it when they start). Default: auth on (ADR 0016).")
  boolean noAuth;

  @Option(
      names = "--remote",
      paramLabel = "URL",
      description =
          "Remote storage of the pageserver and the safekeepers: s3://BUCKET[/PREFIX] (credentials"
              + " from the AWS SDK's default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
              + " ~/.aws, instance roles), file:///PATH or a directory (default: the repository's"
              + " directory remote/).")
  String remote;

  @Option(
      names = "--from-remote",
      paramLabel = "URL",
      description =
          "Restore from remote storage alone (after losing the pageserver's and the safekeepers'"
              + " disks): the new repository uses this remote storage (same forms as --remote),"
              + " attaches every tenant found there in a new generation, brings each timeline up"
              + " to the end of its offloaded WAL, and names the branches as they were named.")
  String fromRemote;

  @Option(
      names = "--remote-endpoint",
      paramLabel = "URL",
      description =
          "S3-compatible server for an s3:// --remote, e.g. http://127.0.0.1:9000 (path-style"
              + " requests; default: AWS).")
  String remoteEndpoint;

  @Option(
      names = "--remote-region",
      paramLabel = "REGION",
      description = "Region of an s3:// --remote (default us-east-1).")
  String remoteRegion;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    if (portBase != null && (portBase < 1024 || portBase > 65000)) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--compute-port-base must be between 1024 and 65000");
    }
    if (safekeepers != null && (safekeepers < 0 || safekeepers > RepoConfig.MAX_SAFEKEEPERS)) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          "--safekeepers must be between 0 and "
              + RepoConfig.MAX_SAFEKEEPERS
              + " (a majority of them must answer for every commit), got "
              + safekeepers);
    }
    if (remote != null && fromRemote != null) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          "--from-remote and --remote exclude each other (the restored repository keeps using"
              + " the remote storage it restores from)");
    }
    String url = fromRemote != null ? fromRemote : remote;
    RemoteStorageConfig remoteConfig = null;
    if (url != null) {
      try {
        remoteConfig = RemoteStorageConfig.fromUrl(url, remoteEndpoint, remoteRegion);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
    } else if (remoteEndpoint != null || remoteRegion != null) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--remote-endpoint and --remote-region need --remote s3://…");
    }
    int count = safekeepers == null ? RepoInit.DEFAULT_SAFEKEEPERS : safekeepers;
    if (safekeeperPortBase != null
        && (safekeeperPortBase < 1024 || safekeeperPortBase + 2 * count - 1 > 65535)) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          "--safekeeper-port-base must be between 1024 and " + (65536 - 2 * count));
    }
    var dir = Repository.locate();
    RepoInit.Options options =
        new RepoInit.Options(
            http, pg, portBase, pgOsUser, safekeepers, safekeeperPortBase, !noAuth, remoteConfig);
    if (fromRemote != null) {
      out.println("restoring repository " + dir + " from remote storage");
      RepoRestore.Result r = RepoRestore.run(dir, options, out);
      printRestored(out, r.branches());
      out.println(
          "repository ready: tenant "
              + r.repo().config().defaultTenantId()
              + ", "
              + r.branches().size()
              + (r.branches().size() == 1 ? " branch" : " branches")
              + " restored; next: zenith start");
      return 0;
    }
    out.println("initializing repository " + dir);
    Repository repo = RepoInit.run(dir, options, out);
    out.println(
        "repository ready: tenant "
            + repo.config().defaultTenantId()
            + ", branch main, "
            + (count == 0
                ? "no safekeepers"
                : count + (count == 1 ? " safekeeper" : " safekeepers"))
            + "; next: zenith start");
    return 0;
  }

  private static void printRestored(PrintWriter out, List<RepoRestore.Restored> branches) {
    Table t = new Table("TENANT", "BRANCH", "TIMELINE", "LAYERS UP TO", "RESTORED UP TO");
    for (RepoRestore.Restored b : branches) {
      t.row(
          b.tenant(),
          b.branch() + (b.derivedName() ? " (named from its id)" : ""),
          b.timeline().toString(),
          b.layersEnd().toString(),
          b.end().toString());
    }
    t.print(out);
  }
}
