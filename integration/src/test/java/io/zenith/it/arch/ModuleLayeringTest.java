package io.zenith.it.arch;

import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import com.tngtech.archunit.library.Architectures;
import io.zenith.gateway.http.Json;
import io.zenith.layer.archfixture.ReachesUp;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * DESIGN.md §2's direction of dependency, checked on the compiled main code of every module: a
 * lower module never uses a higher one. Maven's module graph already keeps a module from compiling
 * against one it does not declare; this rule also holds if a dependency is ever added to a {@code
 * pom.xml} in the wrong direction, and it names the offending classes.
 *
 * <p>Modules are package trees ({@code docs/conventions.md}): wal-log = {@code io.zenith.wal..} and
 * {@code io.zenith.pg..}; replication, layer-store, ingest-pipeline, page-serving and gateway =
 * {@code io.zenith.replication..}, {@code .layer..}, {@code .ingest..}, {@code .page..}, {@code
 * .gateway..}.
 */
class ModuleLayeringTest {
  private static final Pattern TEST_JAR = Pattern.compile(".*-tests\\.jar.*");

  /** The layers of DESIGN.md §2 and who may use each. */
  static ArchRule layering() {
    return Architectures.layeredArchitecture()
        .consideringOnlyDependenciesInLayers()
        .layer("wal-log")
        .definedBy("io.zenith.wal..", "io.zenith.pg..")
        .layer("replication")
        .definedBy("io.zenith.replication..")
        .layer("layer-store")
        .definedBy("io.zenith.layer..")
        .layer("ingest-pipeline")
        .definedBy("io.zenith.ingest..")
        .layer("page-serving")
        .definedBy("io.zenith.page..")
        .layer("gateway")
        .definedBy("io.zenith.gateway..")
        .whereLayer("gateway")
        .mayNotBeAccessedByAnyLayer()
        .whereLayer("page-serving")
        .mayOnlyBeAccessedByLayers("gateway")
        .whereLayer("ingest-pipeline")
        .mayOnlyBeAccessedByLayers("page-serving", "gateway")
        .whereLayer("layer-store")
        .mayOnlyBeAccessedByLayers("ingest-pipeline", "page-serving", "gateway")
        .whereLayer("replication")
        .mayOnlyBeAccessedByLayers("gateway");
  }

  @Test
  void mainCodeDependsOnlyDownwards() {
    JavaClasses main =
        new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            // The modules' test-jars (shared fixtures) are test code too.
            .withImportOption(location -> !location.matches(TEST_JAR))
            .importPackages("io.zenith");
    // Every module's main code is there, or the rule would pass on nothing.
    for (String pkg :
        new String[] {
          "io.zenith.wal",
          "io.zenith.pg",
          "io.zenith.replication",
          "io.zenith.layer",
          "io.zenith.ingest",
          "io.zenith.page",
          "io.zenith.gateway"
        }) {
      assertThat(main.stream().anyMatch(c -> c.getPackageName().startsWith(pkg)))
          .as("main classes of %s imported", pkg)
          .isTrue();
    }
    // ... and no test code: a test or a shared fixture may use anything.
    assertThat(main.contain("io.zenith.wal.LsnTest")).as("a test class imported").isFalse();
    assertThat(main.contain("io.zenith.wal.testing.SyntheticWal"))
        .as("a test-jar fixture imported")
        .isFalse();
    layering().check(main);
  }

  @Test
  void aWrongImportFailsTheRuleNamingBothClasses() {
    JavaClasses classes = new ClassFileImporter().importClasses(ReachesUp.class, Json.class);
    EvaluationResult result = layering().evaluate(classes);
    assertThat(result.hasViolation()).isTrue();
    assertThat(String.join("\n", result.getFailureReport().getDetails()))
        .contains(ReachesUp.class.getName())
        .contains(Json.class.getName());
  }
}
