package io.zenith.gateway.control;

import io.zenith.pg.PgDistribution;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Running PostgreSQL's programs ({@code pg_ctl}, {@code initdb}) for the control plane: as
 * PostgreSQL's OS user ({@link PgDistribution#processBuilder}), from {@code /} (a cwd the user
 * cannot enter makes {@code runuser}'s children print warnings), output captured, every run
 * bounded. Blocking; stateless, so thread-safe.
 */
final class PgPrograms {
  private PgPrograms() {}

  /** How long {@code pg_ctl} waits for a start or a clean stop ({@code -t}). */
  static final Duration PG_CTL_TIMEOUT = Duration.ofSeconds(120);

  /** What a PostgreSQL program printed and returned. */
  record RunResult(int exit, String output) {}

  /** Runs a PostgreSQL program as its OS user, in {@code /}; output captured. */
  static RunResult run(PgDistribution pg, String program, List<String> args) {
    try {
      Path out = Files.createTempFile("zenith-", ".out");
      try {
        Process p =
            pg.processBuilder(program, args)
                .directory(new File("/"))
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
        // pg_ctl's own wait is bounded by -t; the margin covers the program's start and exit
        if (!p.waitFor(PG_CTL_TIMEOUT.toSeconds() + 60, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          return new RunResult(-1, program + " did not finish");
        }
        return new RunResult(p.exitValue(), Files.readString(out));
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new ControlPlaneException("cannot run " + program + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ControlPlaneException("interrupted while running " + program);
    }
  }

  /** {@code pg_ctl start} of a compute, waiting (bounded) until it accepts connections. */
  static RunResult start(PgDistribution pg, ComputeNode node) {
    return pgCtl(
        pg,
        node,
        "-l",
        node.logFile().toString(),
        "-w",
        "-t",
        Long.toString(PG_CTL_TIMEOUT.toSeconds()),
        "start");
  }

  /**
   * {@code pg_ctl stop -m fast} of a compute, waiting at most {@code bound} (a primary's walsenders
   * first hand every record to its synchronous standbys).
   */
  static RunResult stopFast(PgDistribution pg, ComputeNode node, Duration bound) {
    return pgCtl(pg, node, "-m", "fast", "-w", "-t", Long.toString(bound.toSeconds()), "stop");
  }

  /**
   * {@code pg_ctl stop -m immediate} of a compute; {@code wait} makes pg_ctl wait until it is gone.
   */
  static RunResult stopImmediately(PgDistribution pg, ComputeNode node, boolean wait) {
    return wait
        ? pgCtl(pg, node, "-m", "immediate", "-w", "stop")
        : pgCtl(pg, node, "-m", "immediate", "stop");
  }

  /** {@code pg_ctl -D <the compute's data directory> <args>}. */
  private static RunResult pgCtl(PgDistribution pg, ComputeNode node, String... args) {
    List<String> all = new ArrayList<>(List.of("-D", node.pgdata().toString()));
    all.addAll(List.of(args));
    return run(pg, "pg_ctl", all);
  }

  /**
   * The last FATAL/ERROR/PANIC line of a log from byte {@code from} on (or else the last line of
   * the program's output), for a one-line error.
   */
  static String lastProblem(Path log, long from, String output) {
    String found = null;
    try {
      if (Files.exists(log)) {
        byte[] all = Files.readAllBytes(log);
        String fresh =
            new String(
                all,
                (int) Math.min(from, all.length),
                all.length - (int) Math.min(from, all.length),
                StandardCharsets.UTF_8);
        String previous = null;
        for (String l : fresh.lines().toList()) {
          if (l.contains("FATAL:") || l.contains("PANIC:") || l.contains("ERROR:")) {
            found = l.strip();
            // "configuration file … contains errors" follows the lines (LOG) that say which
            if (l.contains("contains errors") && previous != null && previous.contains("LOG:")) {
              found = previous.substring(previous.indexOf("LOG:") + 4).strip() + "; " + found;
            }
          }
          previous = l;
        }
      }
    } catch (IOException e) {
      // fall back to the output
    }
    if (found == null) {
      List<String> lines = output.lines().filter(l -> !l.isBlank()).toList();
      found = lines.isEmpty() ? "no output" : lines.get(lines.size() - 1).strip();
    }
    return found;
  }

  /** The last problem of the program's output alone (a program without a log, such as initdb). */
  static String lastProblem(String output) {
    return lastProblem(Path.of("/nonexistent"), 0, output);
  }
}
