package io.zenith.gateway.cli;

import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith tenant list}. */
@Command(
    name = "tenant",
    mixinStandardHelpOptions = true,
    description = "Tenants of the pageserver.",
    subcommands = {TenantCommand.ListTenants.class})
final class TenantCommand extends CommandGroup {
  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List the pageserver's tenants; the repository's default one is marked.")
  static final class ListTenants implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      Repository repo = Repository.open();
      Table t = new Table("TENANT", "TIMELINES", "DEFAULT");
      try {
        for (ApiModel.TenantInfo i : repo.pageserver().tenants()) {
          t.row(
              i.id(),
              Integer.toString(i.timelines()),
              i.id().equals(repo.config().defaultTenantId()) ? "*" : "");
        }
      } catch (JsonHttpClient.ApiError e) {
        throw new ControlPlaneException("the pageserver: " + e.getMessage());
      }
      t.print(spec.commandLine().getOut());
      return 0;
    }
  }
}
