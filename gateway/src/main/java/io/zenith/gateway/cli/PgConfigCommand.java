package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.ComputeSettings;
import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.Repository;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.stream.Collectors;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code zenith pg config <name> [--set NAME=VALUE]... [--unset NAME]...}: a compute's PostgreSQL
 * settings. Not thread-safe (picocli fills the fields; one instance runs once).
 */
@Command(
    name = "config",
    mixinStandardHelpOptions = true,
    description = {
      "Show or change a compute's PostgreSQL settings.",
      "Without options: a table SETTING VALUE SOURCE, where SOURCE is `pg config` (set with"
          + " --config or --set, written into postgresql.conf at every start) or `ALTER SYSTEM`"
          + " (set on the running compute, kept across restarts; it wins over `pg config`).",
      "--set and --unset change a stopped compute; they take effect at its next start. --set"
          + " also replaces an ALTER SYSTEM value of that setting; --unset removes both."
    })
final class PgConfigCommand extends PgCommand.Named {
  @Option(
      names = "--set",
      paramLabel = "NAME=VALUE",
      description = "Set a PostgreSQL setting (repeatable).")
  List<String> set = List.of();

  @Option(
      names = "--unset",
      paramLabel = "NAME",
      description = "Remove a setting, back to PostgreSQL's default (repeatable).")
  List<String> unset = List.of();

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    List<ComputeSettings.Setting> toSet = parse(spec.commandLine(), set);
    List<String> toUnset = new ArrayList<>();
    for (String u : unset) {
      try {
        toUnset.add(ComputeSettings.parseName(u));
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
    }
    if (toSet.isEmpty() && toUnset.isEmpty()) {
      Repository repo = Repository.open();
      ComputeNode n = repo.compute(name);
      table(n.spec().settings(), Cli.computes(repo, spec.commandLine()).alterSystem(n)).print(out);
      return 0;
    }
    return Cli.underLock(
        repo -> {
          Computes computes = Cli.computes(repo, spec.commandLine());
          computes.configure(repo.compute(name), toSet, toUnset);
          for (ComputeSettings.Setting s : toSet) {
            out.println("set " + s.name() + " = " + ComputeSettings.display(s.value()));
          }
          for (String u : toUnset) {
            out.println("unset " + u);
          }
          out.println("compute " + name + " uses its settings from its next `zenith pg start`");
        });
  }

  /** SETTING VALUE SOURCE: {@code pg config}'s settings, then ALTER SYSTEM's (which win). */
  static Table table(Map<String, String> settings, Map<String, String> alterSystem) {
    Table t = new Table("SETTING", "VALUE", "SOURCE");
    settings.forEach((k, v) -> t.row(k, ComputeSettings.display(v), "pg config"));
    alterSystem.forEach((k, v) -> t.row(k, ComputeSettings.display(v), "ALTER SYSTEM"));
    return t;
  }

  /** {@code NAME=VALUE} arguments; a malformed one is a usage error (exit 2). */
  static List<ComputeSettings.Setting> parse(CommandLine cmd, List<String> assignments) {
    List<ComputeSettings.Setting> out = new ArrayList<>();
    for (String a : assignments) {
      try {
        out.add(ComputeSettings.parse(a));
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(cmd, e.getMessage());
      }
    }
    return out;
  }

  /** {@code a=1 b='x y'} for {@code pg show}, or {@code -} when there are none. */
  static String inline(SortedMap<String, String> settings) {
    return settings.isEmpty()
        ? "-"
        : settings.entrySet().stream()
            .map(e -> e.getKey() + "=" + ComputeSettings.display(e.getValue()))
            .collect(Collectors.joining(" "));
  }
}
