package io.zenith.it.regress;

import io.zenith.pg.PgDistribution;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * PostgreSQL 15's regression suite as {@code make deps} prepares it ({@code
 * integration/pg-regress/fetch-suite.sh}): the SQL and expected files of Debian's postgresql-15
 * source package, the C modules the schedule loads, and PGXS's {@code pg_regress}; and one {@code
 * pg_regress} installcheck run against a running server.
 *
 * <p>Found at {@code $ZENITH_PG_REGRESS_DIR}, else {@code <project
 * root>/.cache/pg-regress/current}. Each run works on its own copy, owned by PostgreSQL's OS user:
 * the server reads the suite's data files and loads its modules, and {@code pg_regress} (run as
 * that user, like every PostgreSQL program) writes its results. Not thread-safe.
 */
final class PgRegressSuite {
  private final Path root;
  private final Properties props;

  private PgRegressSuite(Path root, Properties props) {
    this.root = root;
    this.props = props;
  }

  /** The suite {@code make deps} prepared; fails with a sentence naming {@code make deps}. */
  static PgRegressSuite locate() {
    String env = System.getenv("ZENITH_PG_REGRESS_DIR");
    Path root =
        env != null && !env.isBlank()
            ? Path.of(env)
            : Path.of(System.getProperty("zenith.project.root", ".."))
                .resolve(".cache/pg-regress/current");
    Path file = root.resolve("suite.properties");
    if (!Files.isRegularFile(file)) {
      throw new IllegalStateException(
          "PostgreSQL's regression suite is not at "
              + root.toAbsolutePath()
              + "; run `make deps` (integration/pg-regress/fetch-suite.sh) or set"
              + " ZENITH_PG_REGRESS_DIR");
    }
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(file)) {
      p.load(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return new PgRegressSuite(root, p);
  }

  String sourceVersion() {
    return props.getProperty("source_version");
  }

  String binaryVersion() {
    return props.getProperty("binary_version");
  }

  Path pgRegress() {
    return Path.of(props.getProperty("pg_regress"));
  }

  /** The outcome of one run. */
  record Result(
      Map<String, String> outcomes, Map<String, String> diffs, String summary, Duration took) {
    List<String> failed() {
      return outcomes.entrySet().stream()
          .filter(e -> !e.getValue().equals("ok"))
          .map(Map.Entry::getKey)
          .toList();
    }
  }

  /**
   * Runs {@code pg_regress} (installcheck: database {@code regression} created afresh, the server
   * is not started or stopped) with the suite's schedule file {@code schedule} (e.g. {@code
   * parallel_schedule}) against the server at 127.0.0.1:{@code port}, at most {@code
   * maxConnections} tests at a time. {@code pg_regress}'s {@code regression.out} and {@code
   * regression.diffs} are copied to {@code keepDir}.
   */
  Result run(
      PgDistribution pg,
      int port,
      String schedule,
      int maxConnections,
      Path workDir,
      Path keepDir) {
    try {
      pg.createOwnedDirectory(workDir);
      Path input = workDir.resolve("suite");
      Path lib = workDir.resolve("lib");
      Path output = workDir.resolve("out");
      copyForPgUser(pg, root.resolve("suite"), input);
      copyForPgUser(pg, root.resolve("lib"), lib);
      Path scheduleFile = input.resolve(schedule);
      pg.createOwnedDirectory(output);
      List<String> args =
          List.of(
              "--inputdir=" + input,
              "--outputdir=" + output,
              "--bindir=" + pg.binDir(),
              "--dlpath=" + lib,
              "--schedule=" + scheduleFile,
              "--max-connections=" + maxConnections,
              "--host=127.0.0.1",
              "--port=" + port,
              "--user=postgres",
              "--no-locale",
              "--encoding=UTF8");
      Path log = workDir.resolve("pg_regress.log");
      long t0 = System.nanoTime();
      Process p =
          new ProcessBuilder(pg.command(pgRegress(), args))
              .redirectErrorStream(true)
              .redirectOutput(log.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
              .start();
      if (!p.waitFor(20, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new IllegalStateException("pg_regress did not finish in 20 minutes; see " + log);
      }
      Duration took = Duration.ofNanos(System.nanoTime() - t0);
      Path out = output.resolve("regression.out");
      if (!Files.exists(out)) {
        throw new IllegalStateException(
            "pg_regress exited "
                + p.exitValue()
                + " without regression.out:\n"
                + Files.readString(log, StandardCharsets.UTF_8));
      }
      Files.createDirectories(keepDir);
      Files.copy(log, keepDir.resolve("pg_regress.log"), StandardCopyOption.REPLACE_EXISTING);
      Files.copy(out, keepDir.resolve("regression.out"), StandardCopyOption.REPLACE_EXISTING);
      Path diffs = output.resolve("regression.diffs");
      String diffText = "";
      if (Files.exists(diffs)) {
        Files.copy(diffs, keepDir.resolve("regression.diffs"), StandardCopyOption.REPLACE_EXISTING);
        diffText = Files.readString(diffs, StandardCharsets.UTF_8);
      } else {
        Files.deleteIfExists(keepDir.resolve("regression.diffs"));
      }
      String summary = Files.readString(out, StandardCharsets.UTF_8);
      Map<String, String> outcomes = parseOutcomes(summary);
      if (outcomes.isEmpty()) {
        throw new IllegalStateException("no test outcome in " + out + ":\n" + summary);
      }
      return new Result(
          outcomes,
          parseDiffs(diffText, List.of(input.toString(), output.toString())),
          summary,
          took);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  private static final Pattern OUTCOME =
      Pattern.compile(
          "^(?:test\\s+|\\s+)(\\S+)\\s+\\.\\.\\.\\s+(ok|FAILED|failed \\(ignored\\))",
          Pattern.MULTILINE);

  /**
   * Test name → {@code ok}, {@code FAILED} or {@code failed (ignored)}, as pg_regress reports them.
   */
  static Map<String, String> parseOutcomes(String regressionOut) {
    Map<String, String> m = new LinkedHashMap<>();
    Matcher x = OUTCOME.matcher(regressionOut);
    while (x.find()) {
      m.put(x.group(1), x.group(2));
    }
    return m;
  }

  private static final Pattern DIFF_HEADER =
      Pattern.compile("^diff \\S+ (\\S+) (\\S+)$", Pattern.MULTILINE);

  /**
   * Test name → its diff without the three header lines (which name files and times), with the
   * run's directories replaced by placeholders, so that two runs' diffs compare as text.
   */
  static Map<String, String> parseDiffs(String diffs, List<String> dirs) {
    Map<String, String> m = new LinkedHashMap<>();
    Matcher x = DIFF_HEADER.matcher(diffs);
    List<int[]> starts = new ArrayList<>();
    List<String> names = new ArrayList<>();
    while (x.find()) {
      starts.add(new int[] {x.start(), x.end()});
      String result = Path.of(x.group(2)).getFileName().toString();
      names.add(result.replaceFirst("\\.out$", ""));
    }
    for (int i = 0; i < starts.size(); i++) {
      int end = i + 1 < starts.size() ? starts.get(i + 1)[0] : diffs.length();
      String body = diffs.substring(starts.get(i)[1], end);
      // drop the "--- expected" and "+++ result" lines
      body = body.replaceFirst("^\\n--- [^\\n]*\\n\\+\\+\\+ [^\\n]*\\n", "");
      for (int d = 0; d < dirs.size(); d++) {
        body = body.replace(dirs.get(d), "<dir" + d + ">");
      }
      m.merge(names.get(i), body, String::concat);
    }
    return m;
  }

  private static void copyForPgUser(PgDistribution pg, Path from, Path to) throws IOException {
    try (Stream<Path> walk = Files.walk(from)) {
      for (Path p : walk.toList()) {
        Path target = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
          Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rwxr-xr-x"));
        } else {
          Files.copy(p, target, StandardCopyOption.REPLACE_EXISTING);
        }
        pg.giveToPgUser(target);
      }
    }
  }
}
