package io.zenith.it.regress;

import io.zenith.pg.PgDistribution;
import io.zenith.wal.Lsn;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Which visibility-map pages the WAL carries without their bits: {@code pg_waldump -b} over a
 * cluster's WAL, keeping for every map page whether its latest applied full-page image left out the
 * whole bitmap (hole from the end of the page header to the end of the page), as {@code
 * log_newpage_buffer(buf, page_std=true)} does for a map page whose {@code pd_lower}/{@code
 * pd_upper} frame the bitmap (PostgreSQL 15's {@code CREATE DATABASE … STRATEGY WAL_LOG}).
 * Stateless.
 */
final class VmImageHoles {
  private VmImageHoles() {}

  private static final Pattern VM_IMAGE =
      Pattern.compile(
          "blkref #\\d+: rel (\\d+)/(\\d+)/(\\d+) fork vm blk (\\d+) \\(FPW\\); hole: offset:"
              + " (\\d+), length: (\\d+)");

  /**
   * The pages as {@code base/<db>/<relfilenode>_vm#<block>} ({@code global/…} for tablespace 1664).
   */
  static Set<String> scan(PgDistribution pg, Path walDir, Lsn from) {
    List<String> segments;
    try (Stream<Path> s = Files.list(walDir)) {
      segments =
          s.map(p -> p.getFileName().toString())
              .filter(n -> n.matches("[0-9A-F]{24}"))
              .sorted()
              .toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    // pg_waldump finds the first record from a page start: start at the page after `from`.
    Lsn start = Lsn.of((from.value() / 8192 + 1) * 8192);
    List<String> args =
        new ArrayList<>(
            List.of("-b", "-s", start.toString(), "-p", walDir.toString(), segments.getFirst()));
    if (segments.size() > 1) {
      args.add(segments.getLast());
    }
    Map<String, Boolean> latest = new HashMap<>();
    try {
      Path err = Files.createTempFile("zenith-it-pg-waldump-", ".err");
      try {
        Process p =
            new ProcessBuilder(pg.command("pg_waldump", args))
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                .redirectError(err.toFile())
                .start();
        try (BufferedReader r =
            new BufferedReader(
                new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8), 1 << 16)) {
          String line;
          while ((line = r.readLine()) != null) {
            if (!line.contains(" fork vm blk ")) {
              continue;
            }
            Matcher m = VM_IMAGE.matcher(line);
            if (m.find()) {
              int offset = Integer.parseInt(m.group(5));
              int length = Integer.parseInt(m.group(6));
              String dir = m.group(1).equals("1664") ? "global" : "base/" + m.group(2);
              latest.put(
                  dir + "/" + m.group(3) + "_vm#" + m.group(4),
                  offset <= 24 && offset + length == 8192);
            }
          }
        }
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
          p.destroyForcibly();
          throw new IllegalStateException("pg_waldump timed out: " + args);
        }
        String errors = Files.readString(err);
        // pg_waldump ends with an error at the end of the written WAL; anything else is a problem
        if (p.exitValue() != 0 && !errors.contains("invalid record length")) {
          throw new IllegalStateException("pg_waldump " + args + " failed: " + errors);
        }
      } finally {
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
    return latest.entrySet().stream()
        .filter(Map.Entry::getValue)
        .map(Map.Entry::getKey)
        .collect(Collectors.toUnmodifiableSet());
  }
}
