package io.zenith.gateway.control;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Keeps what {@code ALTER SYSTEM} set on a compute across the rebuild of its data directory (ADR
 * 0012): after a compute stopped, and before a start deletes the data directory of its last run
 * (which may have crashed), the entries of its {@code postgresql.auto.conf} go into {@code
 * node.toml}'s {@code [alter_system]}; at the start they are written back, less those that cannot
 * be restored (settings the control plane owns), with a warning each. Stateless; callers hold the
 * repository's lock.
 */
final class AlterSystemKeeper {
  private AlterSystemKeeper() {}

  /**
   * Moves the {@code postgresql.auto.conf} of a stopped {@code node}'s data directory, if there is
   * one, into its {@code node.toml} (the file is deleted once kept); returns the node as it is now.
   * Lines that are not entries are dropped with a warning on {@code err}.
   */
  static ComputeNode keep(Repository repo, ComputeNode node, PrintWriter err) throws IOException {
    Path auto = node.pgdata().resolve(ComputeConfig.AUTO_CONF);
    if (node.running() || !Files.isRegularFile(auto)) {
      return node;
    }
    ComputeSettings.AutoConf read =
        ComputeSettings.parseAutoConf(Files.readString(auto, StandardCharsets.UTF_8));
    for (String bad : read.unreadable()) {
      err.println(
          "warning: compute '"
              + node.spec().name()
              + "': ignoring a line of "
              + ComputeConfig.AUTO_CONF
              + " that is not a setting: "
              + bad.replaceAll("\\p{Cntrl}", "?"));
    }
    ComputeNode kept = save(repo, node, read.settings());
    // Kept once: a later `pg config` change must not be undone by reading this file again at the
    // next start (the data directory holds nothing else of value; the start rebuilds it).
    Files.delete(auto);
    return kept;
  }

  /**
   * {@code node} with only the ALTER SYSTEM settings that may be restored; each one dropped is a
   * warning on {@code err}, and is removed from {@code node.toml} (so it warns once).
   */
  static ComputeNode restorable(Repository repo, ComputeNode node, PrintWriter err)
      throws IOException {
    SortedMap<String, String> kept = new TreeMap<>();
    node.spec()
        .alterSystem()
        .forEach(
            (name, value) -> {
              String why = ComputeSettings.notRestorable(name, value);
              if (why == null) {
                kept.put(name, value);
              } else {
                err.println(
                    "warning: compute '"
                        + node.spec().name()
                        + "': not restoring ALTER SYSTEM SET "
                        + name
                        + ": "
                        + why);
              }
            });
    return save(repo, node, kept);
  }

  private static ComputeNode save(
      Repository repo, ComputeNode node, SortedMap<String, String> alterSystem) throws IOException {
    if (alterSystem.equals(node.spec().alterSystem())) {
      return node;
    }
    ComputeSpec spec = node.spec().withAlterSystem(alterSystem);
    spec.write(node.nodeDir().resolve(ComputeSpec.FILE_NAME));
    return repo.node(spec);
  }
}
