package io.zenith.it.arch;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Module READMEs follow the template of {@code docs/conventions.md} (§ Documentation) and tell the
 * truth about their types: every type a README's "Main types" section lists (the head of each
 * entry, before its description) exists in that module's sources (main, or test for shared
 * fixtures), and no main source file is over 600 lines (issue 10: a class that long does more than
 * one job).
 *
 * <p>Type names are the back-quoted words of the section that look like Java types: {@code WalLog},
 * {@code WalLog.Options} (a nested type), or {@code io.zenith.wal.log.WalLog} (fully qualified,
 * which also fixes its package). Method references such as {@code WalLog.tail} and code such as
 * {@code concatMap(…)} are not type names and are not checked.
 */
class ModuleReadmeTest {
  static final List<String> SECTIONS =
      List.of("## Owns", "## Main types", "## Invariants", "## Data flow", "## Not built yet");

  static final int MAX_MAIN_FILE_LINES = 600;

  private static final Pattern TYPE_NAME =
      Pattern.compile("`((?:[a-z][a-z0-9]*\\.)*)([A-Z][A-Za-z0-9]*(?:\\.[A-Z][A-Za-z0-9]*)*)`");

  private static final Pattern DECLARATION =
      Pattern.compile("\\b(?:class|interface|record|enum)\\s+([A-Z][A-Za-z0-9]*)");

  /** The modules with main code (integration has tests only). */
  static List<String> modules() {
    return List.of(
        "wal-log", "replication", "layer-store", "ingest-pipeline", "page-serving", "gateway");
  }

  static Path root() {
    return Path.of(System.getProperty("zenith.project.root", "..")).toAbsolutePath().normalize();
  }

  @ParameterizedTest
  @MethodSource("modules")
  void readmeFollowsTheTemplateAndItsMainTypesExist(String module) throws IOException {
    Path dir = root().resolve(module);
    String readme = Files.readString(dir.resolve("README.md"));
    assertThat(readme).startsWith("# " + module + "\n");
    int at = -1;
    for (String section : SECTIONS) {
      int next = readme.indexOf("\n" + section + "\n");
      assertThat(next)
          .as("%s/README.md has '%s' after the previous section", module, section)
          .isGreaterThan(at);
      at = next;
    }
    String mainTypes = section(readme, "## Main types");
    Set<String> declared = new HashSet<>();
    Set<String> files = new HashSet<>();
    for (Path src : List.of(dir.resolve("src/main/java"), dir.resolve("src/test/java"))) {
      for (Path f : javaFiles(src)) {
        String rel = src.relativize(f).toString();
        files.add(rel.substring(0, rel.length() - ".java".length()).replace('/', '.'));
        Matcher m = DECLARATION.matcher(Files.readString(f));
        while (m.find()) {
          declared.add(m.group(1));
        }
      }
    }
    List<String> named = new ArrayList<>();
    List<String> missing = new ArrayList<>();
    Matcher m = TYPE_NAME.matcher(entryHeads(mainTypes));
    while (m.find()) {
      String pkg = m.group(1);
      String[] nested = m.group(2).split("\\.");
      named.add(pkg + m.group(2));
      boolean exists =
          Stream.of(nested).allMatch(declared::contains)
              && (pkg.isEmpty()
                  || files.stream()
                      .anyMatch(
                          f -> f.equals(pkg + nested[0]) || f.endsWith("." + pkg + nested[0])));
      if (!exists) {
        missing.add(pkg + m.group(2));
      }
    }
    assertThat(named).as("%s/README.md names its main types", module).isNotEmpty();
    assertThat(missing).as("types %s/README.md names that do not exist", module).isEmpty();
  }

  @ParameterizedTest
  @MethodSource("modules")
  void noMainSourceFileIsOver600Lines(String module) throws IOException {
    List<String> over = new ArrayList<>();
    for (Path f : javaFiles(root().resolve(module).resolve("src/main/java"))) {
      long lines;
      try (Stream<String> s = Files.lines(f)) {
        lines = s.count();
      }
      if (lines > MAX_MAIN_FILE_LINES) {
        over.add(root().relativize(f) + " (" + lines + " lines)");
      }
    }
    assertThat(over).as("main source files over %d lines", MAX_MAIN_FILE_LINES).isEmpty();
  }

  /**
   * The heads of a list's entries: each entry ({@code "- "} at the start of a line) up to its first
   * {@code ": "}, where the description starts. Types a description mentions in passing may be
   * other modules'.
   */
  static String entryHeads(String list) {
    StringBuilder heads = new StringBuilder();
    for (String entry : list.split("\n- ")) {
      int colon = entry.indexOf(": ");
      heads.append(colon < 0 ? entry : entry.substring(0, colon)).append('\n');
    }
    return heads.toString();
  }

  /** The text of a "## " section, up to the next one. */
  static String section(String markdown, String heading) {
    int start = markdown.indexOf("\n" + heading + "\n");
    int end = markdown.indexOf("\n## ", start + heading.length() + 2);
    return markdown.substring(start, end < 0 ? markdown.length() : end);
  }

  static List<Path> javaFiles(Path dir) {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(p -> p.toString().endsWith(".java")).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
