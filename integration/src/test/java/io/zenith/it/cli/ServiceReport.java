package io.zenith.it.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * What the pageserver was doing when a command failed, for the failure's message: a failure seen
 * only in CI (where the repository and its logs are gone by the time anyone looks) then says
 * whether the pageserver was alive, the last lines of its stdout (where a JVM crash reports), its
 * last warnings and errors, and the head of any JVM crash file.
 */
final class ServiceReport {
  private static final int LINES = 15;

  private ServiceReport() {}

  /** The report for the repository {@code repo}, "" when it has no pageserver directory. */
  static String of(Path repo) {
    Path dir = repo.resolve("pageserver");
    if (!Files.isDirectory(dir)) {
      return "";
    }
    StringBuilder b = new StringBuilder("--- pageserver ---\n");
    b.append("process: ").append(alive(dir.resolve("pageserver.pid"))).append('\n');
    b.append("pageserver.out, last lines:\n");
    tail(dir.resolve("pageserver.out"), l -> true)
        .forEach(l -> b.append("  ").append(l).append('\n'));
    b.append("pageserver.log, last warnings and errors:\n");
    tail(dir.resolve("pageserver.log"), l -> l.contains(" WARN ") || l.contains(" ERROR "))
        .forEach(l -> b.append("  ").append(l).append('\n'));
    try (Stream<Path> s = Files.list(dir)) {
      for (Path crash :
          s.filter(f -> f.getFileName().toString().startsWith("hs_err_pid")).toList()) {
        b.append(crash.getFileName()).append(":\n");
        lastMiB(crash).lines().limit(40).forEach(l -> b.append("  ").append(l).append('\n'));
      }
    } catch (IOException | java.io.UncheckedIOException e) {
      b.append("(cannot list ").append(dir).append(": ").append(e).append(")\n");
    }
    return b.toString();
  }

  private static String alive(Path pidFile) {
    try {
      long pid = Long.parseLong(Files.readString(pidFile).strip());
      return "pid "
          + pid
          + (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) ? " alive" : " gone");
    } catch (IOException | NumberFormatException e) {
      return "no pid file";
    }
  }

  private static List<String> tail(Path file, java.util.function.Predicate<String> keep) {
    try {
      return tailOf(lastMiB(file).lines().toList(), keep);
    } catch (IOException | java.io.UncheckedIOException e) {
      return List.of("(cannot read " + file + ": " + e + ")");
    }
  }

  /** The last MiB of {@code file} (logs of long runs are larger), as text. */
  private static String lastMiB(Path file) throws IOException {
    try (java.nio.channels.FileChannel c = java.nio.channels.FileChannel.open(file)) {
      long from = Math.max(0, c.size() - (1 << 20));
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate((int) (c.size() - from));
      while (buf.hasRemaining() && c.read(buf, from + buf.position()) >= 0) {
        // until full or at the end
      }
      return new String(buf.array(), 0, buf.position(), java.nio.charset.StandardCharsets.UTF_8);
    }
  }

  private static List<String> tailOf(
      List<String> lines, java.util.function.Predicate<String> keep) {
    List<String> kept = new ArrayList<>();
    for (int i = lines.size() - 1; i >= 0 && kept.size() < LINES; i--) {
      if (keep.test(lines.get(i))) {
        kept.addFirst(lines.get(i));
      }
    }
    return kept;
  }
}
