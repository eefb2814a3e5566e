package io.zenith.gateway.cli;

import io.zenith.gateway.config.Settings;
import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.Repository;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.auth.Scope;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code zenith auth token}: tokens for clients the control plane does not start (ADR 0016). */
@Command(
    name = "auth",
    mixinStandardHelpOptions = true,
    description = "Tokens for the pageserver's and the safekeepers' APIs (docs/security.md).",
    subcommands = {AuthCommand.Token.class})
final class AuthCommand extends CommandGroup {

  @Command(
      name = "token",
      mixinStandardHelpOptions = true,
      description = {
        "Print a token signed with the repository's private key. Send it as the password of a"
            + " libpq connection (PGPASSWORD, e.g. psql to the pageserver or pg_receivewal from a"
            + " safekeeper) or as \"Authorization: Bearer <token>\" over HTTP.",
        "Scopes: tenant (one tenant's basebackups, pagestream, WAL and timeline APIs), admin"
            + " (every management API), safekeeperdata (traffic between the services)."
      })
  static final class Token implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(
        names = "--scope",
        paramLabel = "SCOPE",
        description = "tenant, admin or safekeeperdata (default: tenant).")
    String scope = Scope.TENANT.claim();

    @CommandLine.Mixin TenantOption tenant;

    @Option(
        names = "--ttl",
        paramLabel = "DURATION",
        description = "How long the token is valid, e.g. 1h, 7d; 0 for ever (default: 1d).")
    String ttl = "1d";

    @Override
    public Integer call() {
      Scope s =
          Scope.fromClaim(scope)
              .orElseThrow(
                  () ->
                      new CommandLine.ParameterException(
                          spec.commandLine(),
                          "unknown scope '"
                              + scope
                              + "' (expected one of "
                              + String.join(
                                  ", ", Arrays.stream(Scope.values()).map(Scope::claim).toList())
                              + ")"));
      Duration d;
      try {
        d = Settings.durationOrZero("--ttl", ttl);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
      if (s != Scope.TENANT && tenant.tenant != null) {
        throw new CommandLine.ParameterException(
            spec.commandLine(), "--tenant goes with --scope tenant only");
      }
      Repository repo = Repository.open();
      if (!repo.auth().enabled()) {
        throw new ControlPlaneException(
            "the repository at "
                + repo.dir()
                + " has no key pair (made with --no-auth): its services take no tokens");
      }
      Claims claims =
          switch (s) {
            case ADMIN -> Claims.admin();
            case SAFEKEEPER_DATA -> Claims.safekeeperData();
            case TENANT -> Claims.tenant(tenant.resolve(repo).id());
          };
      spec.commandLine().getOut().println(repo.auth().issue(claims, d.isZero() ? null : d));
      return 0;
    }
  }
}
