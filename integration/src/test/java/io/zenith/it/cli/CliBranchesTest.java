package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Branches and read-only computes through the real {@code ./zenith}: 100 rows, the LSN, 100 000
 * more; a branch at that LSN sees exactly 100; writes on either side are invisible on the other; a
 * read-only compute sees the data as of its LSN and refuses writes; the error cases. The repository
 * is in a traversable directory, so computes live inside it.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliBranchesTest {
  private ZenithRepo z;
  private String lsnAfter100;
  private int mainPort;

  @BeforeAll
  void setUp() throws IOException {
    z = new ZenithRepo(true);
    z.init();
    z.ok("start");
    z.ok("pg", "create", "main");
    mainPort = z.start("main");
    z.sql(mainPort, "CREATE TABLE b(i int); INSERT INTO b SELECT generate_series(1, 100)");
    lsnAfter100 = z.sql(mainPort, "SELECT pg_current_wal_insert_lsn()");
    z.sql(mainPort, "INSERT INTO b SELECT generate_series(101, 100100)");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void aBranchAtAnLsnSeesExactlyTheRowsBeforeIt() {
    assertThat(z.ok("branch", "b1", "main@" + lsnAfter100).out())
        .matches(
            "created branch b1 from main at " + lsnAfter100 + " \\(timeline [0-9a-f]{32}\\)\n");
    assertThat(z.ok("pg", "create", "c1", "--branch", "b1").out())
        .startsWith("created compute c1 on branch b1 (primary), port ");
    int c1 = z.start("c1");
    assertThat(z.sql(c1, "SELECT count(*) FROM b")).isEqualTo("100");
    // writes on the branch are invisible on main, and the other way round
    z.sql(c1, "INSERT INTO b VALUES (-1)");
    z.sql(mainPort, "INSERT INTO b VALUES (-2)");
    assertThat(z.sql(c1, "SELECT count(*), min(i) FROM b")).isEqualTo("101|-1");
    assertThat(z.sql(mainPort, "SELECT count(*), min(i) FROM b")).isEqualTo("100101|-2");
    // and after both computes are rebuilt from the pageserver
    z.ok("pg", "stop", "c1");
    assertThat(z.sql(z.start("c1"), "SELECT count(*), min(i) FROM b")).isEqualTo("101|-1");
    // a compute in a traversable repository keeps its files there
    assertThat(Path.of(z.show("c1").get("datadir"))).startsWith(z.repo.resolve("computes/c1"));
  }

  @Test
  @Order(2)
  void branchingMistakesFailWithAClearMessage() {
    List<String> before = branchNames();
    assertThat(z.fails(1, "branch", "early", "main@0/10"))
        .matches(
            "zenith branch: error: cannot branch main at 0/10: that is before its history starts"
                + " at \\d+/[0-9A-F]+ \\(initdb\\)");
    assertThat(z.fails(1, "branch", "late", "main@FF/0"))
        .matches(
            "zenith branch: error: cannot branch main at FF/0: main has WAL only up to"
                + " \\d+/[0-9A-F]+");
    assertThat(z.fails(1, "branch", "b1", "main"))
        .isEqualTo("zenith branch: error: branch 'b1' already exists (see `zenith branch list`)");
    assertThat(z.fails(1, "branch", "x", "nosuch"))
        .isEqualTo("zenith branch: error: unknown branch 'nosuch' (branches: b1, main)");
    assertThat(z.fails(2, "branch", "x", "main@zz"))
        .isEqualTo("zenith branch: error: invalid LSN 'zz' (expected e.g. 0/16B3748)");
    assertThat(z.fails(2, "branch")).contains("missing <new>");
    assertThat(z.fails(1, "branch", "list ")).contains("invalid branch name");
    // nothing was created by the failures
    assertThat(branchNames()).isEqualTo(before);
  }

  private List<String> branchNames() {
    return z.ok("branch", "list").lines().stream()
        .map(l -> l.replaceAll("^[│├└─ ]+", "").split("\\s+")[0])
        .toList();
  }

  @Test
  @Order(3)
  void branchListIsATree() {
    z.ok("branch", "b2"); // main at its latest LSN
    z.ok("branch", "b1x", "b1");
    List<String> tree = z.ok("branch", "list").lines();
    assertThat(tree).hasSize(5);
    assertThat(tree.get(0))
        .matches(
            "BRANCH +BRANCHED AT +LATEST LSN +GC CUTOFF +PITR START +ON DISK +L0/L1/IMAGE"
                + " +TIMELINE");
    // No GC ran yet (gc_period is an hour): the cutoff column is empty, and the point-in-time
    // window starts at main's first commit, for the branches too (their history below the branch
    // point is main's). Each branch's own layer files: main has the import's and its flushes', the
    // branches what they wrote (maybe none).
    String pitr = " +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ";
    String own = pitr + " +\\d+ (bytes|kB|MB|GB) +\\d+/\\d+/\\d+ +[0-9a-f]{32}";
    assertThat(tree.get(1))
        .matches("main +\\d+/[0-9A-F]+" + pitr + " +\\d+ (kB|MB) +\\d+/\\d+/\\d+ +[0-9a-f]{32}");
    String mainStart =
        tree.get(1).replaceAll(".*(\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ).*", "$1");
    assertThat(tree.subList(2, 5)).allMatch(row -> row.contains(mainStart));
    assertThat(tree.get(2)).matches("├─ b1 +" + lsnAfter100 + " +\\d+/[0-9A-F]+" + own);
    assertThat(tree.get(3)).matches("│  └─ b1x +\\d+/[0-9A-F]+ +\\d+/[0-9A-F]+" + own);
    assertThat(tree.get(4)).matches("└─ b2 +\\d+/[0-9A-F]+ +\\d+/[0-9A-F]+" + own);
    CliQuickStartTest.assertAligned(tree);
  }

  @Test
  @Order(4)
  void aReadOnlyComputeSeesTheDataAsOfItsLsnAndRefusesWrites() {
    assertThat(z.ok("pg", "create", "ro", "--lsn", lsnAfter100).out())
        .startsWith("created compute ro on branch main (read-only at " + lsnAfter100 + "), port ");
    assertThat(z.ok("pg", "start", "ro").out())
        .contains("compute ro is running read-only on branch main at " + lsnAfter100);
    int ro = z.port("ro");
    assertThat(z.sql(ro, "SELECT count(*), min(i), max(i) FROM b")).isEqualTo("100|1|100");
    ZenithRepo.PsqlResult write = z.psql(ro, "INSERT INTO b VALUES (0)");
    assertThat(write.exit()).isNotZero();
    assertThat(write.output()).contains("cannot execute INSERT in a read-only transaction");
    assertThat(z.show("ro"))
        .containsEntry("lsn", lsnAfter100)
        .containsEntry("mode", "read-only")
        .containsEntry("status", "running");
    // it runs next to the primary of the same branch; a second primary does not
    z.ok("pg", "create", "main2");
    assertThat(z.fails(1, "pg", "start", "main2"))
        .isEqualTo(
            "zenith pg start: error: compute 'main' already runs as the primary of branch 'main'"
                + " (one primary per branch); stop it first, or create a read-only compute with"
                + " --lsn");
    assertThat(z.fails(1, "pg", "create", "ro2", "--lsn", "0/10"))
        .contains("cannot create a compute on main at 0/10: that is before its history starts");
    List<String> list = z.ok("pg", "list").lines();
    assertThat(list)
        .anyMatch(
            l -> l.matches("ro +127\\.0\\.0\\.1:\\d+ +main +" + lsnAfter100 + " +full +running"));
    z.ok("pg", "stop", "ro", "--destroy");
    z.ok("pg", "stop", "main2", "--destroy");
    assertThat(z.fails(1, "pg", "stop", "c1x")).contains("unknown compute 'c1x'");
  }
}
