package io.zenith.it.wal;

import io.zenith.gateway.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Runs the {@code zenith} CLI in this JVM, capturing what it prints. Stateless. */
public final class ZenithCli {
  private ZenithCli() {}

  /** What one command printed and returned. */
  public record Result(int exitCode, String out, String err) {

    /** Non-empty lines of stdout. */
    List<String> outLines() {
      return out.lines().filter(l -> !l.isEmpty()).toList();
    }

    /** Lines of stderr (empty lines included: a blank line is still a line the user sees). */
    List<String> errLines() {
      return err.lines().toList();
    }

    @Override
    public String toString() {
      String tail = out.length() > 2000 ? "…" + out.substring(out.length() - 2000) : out;
      return "exit " + exitCode + "\n--- stderr ---\n" + err + "\n--- stdout (tail) ---\n" + tail;
    }
  }

  public static Result run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
      code = Main.run(args, o, e);
    }
    return new Result(
        code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }
}
