package io.zenith.gateway.cli;

import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code zenith timeline compact|gc <branch>}: the history's upkeep, now. */
@Command(
    name = "timeline",
    mixinStandardHelpOptions = true,
    description = "Upkeep of a branch's history on the pageserver, now rather than periodically.",
    subcommands = {TimelineCommand.Compact.class, TimelineCommand.Gc.class})
final class TimelineCommand extends CommandGroup {

  /** A pageserver call on a timeline. */
  @FunctionalInterface
  interface TimelineCall<T> {
    T on(PageserverClient pageserver, TenantId tenant, TimelineId timeline);
  }

  /**
   * {@code call} on {@code branch}'s timeline; an unknown branch or the pageserver's refusal is one
   * line naming what could not be done ({@code what}).
   */
  static <T> T onBranch(
      String branch, TenantOption tenantOption, String what, TimelineCall<T> call) {
    Repository repo = Repository.open();
    TenantId tenant = tenantOption.resolve(repo).id();
    TimelineId id = repo.branches(tenant).get(branch);
    try {
      return call.on(repo.pageserver(), tenant, id);
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("cannot " + what + " " + branch + ": " + e.getMessage());
    }
  }

  @Command(
      name = "compact",
      mixinStandardHelpOptions = true,
      description =
          "Compact <branch> now: image layers where image_creation_threshold delta layers cover a"
              + " key range, then the L0 layers merged into L1 layers once there are"
              + " compaction_threshold.")
  static final class Compact implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<branch>", description = "The branch (e.g. main).")
    String branch;

    @CommandLine.Mixin TenantOption tenant;

    @Override
    public Integer call() {
      ApiModel.CompactionInfo r = onBranch(branch, tenant, "compact", PageserverClient::compact);
      PrintWriter out = spec.commandLine().getOut();
      out.printf(
          "compacted %s: %d image layers (%d pages), %d L0 layers merged into %d L1 layers,"
              + " %d layer files (%s) removed%n",
          branch,
          r.imageLayers(),
          r.imagePages(),
          r.l0Merged(),
          r.l1Written(),
          r.layersRemoved(),
          Cli.bytes(r.bytesRemoved()));
      return 0;
    }
  }

  @Command(
      name = "gc",
      mixinStandardHelpOptions = true,
      description =
          "Collect <branch>'s garbage now: its GC cutoff rises to what gc_horizon and"
              + " pitr_interval allow (never above a child branch's branch point), and what no"
              + " read at or above it needs is removed.")
  static final class Gc implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<branch>", description = "The branch (e.g. main).")
    String branch;

    @CommandLine.Mixin TenantOption tenant;

    @Override
    public Integer call() {
      ApiModel.GcInfo r = onBranch(branch, tenant, "collect garbage of", PageserverClient::gc);
      spec.commandLine()
          .getOut()
          .printf(
              "GC of %s: cutoff %s; %d versions and %d layer files (%s) removed%n",
              branch,
              r.cutoff() == null ? "none yet" : r.cutoff(),
              r.versionsRemoved(),
              r.layersRemoved(),
              Cli.bytes(r.bytesRemoved()));
      return 0;
    }
  }
}
