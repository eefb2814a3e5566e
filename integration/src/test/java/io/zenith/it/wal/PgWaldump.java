package io.zenith.it.wal;

import io.zenith.pg.PgDistribution;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs stock {@code pg_waldump -b} and parses what it printed. Stateless. */
public final class PgWaldump {
  private PgWaldump() {}

  /**
   * What pg_waldump printed: the records, the head of each record line ({@code rmgr: … desc:
   * TYPE}), its stderr and its exit code.
   */
  public record Result(List<DumpedRecord> records, List<String> heads, String err, int exitCode) {}

  /**
   * Dumps segments {@code first} to {@code last} of {@code walDir}. pg_waldump stops at the end of
   * {@code last} or at the first record it cannot read, and reports the latter on stderr with a
   * non-zero exit ("invalid record length at …: wanted 24, got 0" at the end of written WAL), so
   * the output is captured whatever the exit code.
   */
  public static Result dump(PgDistribution pg, Path walDir, String first, String last)
      throws IOException, InterruptedException {
    return dump(pg, walDir, first, last, List.of());
  }

  /** {@link #dump(PgDistribution, Path, String, String)} with more options (e.g. {@code -r}). */
  public static Result dump(
      PgDistribution pg, Path walDir, String first, String last, List<String> options)
      throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("-b"));
    args.addAll(options);
    args.addAll(List.of("-p", walDir.toString(), first));
    if (!last.equals(first)) {
      // With one file pg_waldump stops at that segment's end, cutting a record that spans it.
      args.add(last);
    }
    Path out = Files.createTempFile("zenith-it-pg-waldump-", ".out");
    Path err = Files.createTempFile("zenith-it-pg-waldump-", ".err");
    try {
      Process p =
          new ProcessBuilder(pg.command("pg_waldump", args))
              .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
              .redirectOutput(out.toFile())
              .redirectError(err.toFile())
              .start();
      if (!p.waitFor(2, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new IllegalStateException("pg_waldump timed out: " + args);
      }
      DumpedRecord.PgWaldumpOutput parsed = DumpedRecord.parsePgWaldump(out);
      return new Result(parsed.records(), parsed.heads(), Files.readString(err), p.exitValue());
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }
}
