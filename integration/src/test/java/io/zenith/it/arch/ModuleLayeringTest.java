package io.zenith.it.arch;

import static com.tngtech.archunit.base.DescribedPredicate.not;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAPackage;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAnyPackage;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.EvaluationResult;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import com.tngtech.archunit.library.Architectures;
import io.zenith.gateway.http.Json;
import io.zenith.layer.archfixture.ReachesUp;
import io.zenith.layer.internal.archfixture.Hidden;
import io.zenith.page.archfixture.ReachesIn;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
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
 *
 * <p>A package named {@code internal} (anywhere below a module's root) holds types that the
 * module's own packages share but that are not its API: only the module itself may use them.
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

  /** The module a class belongs to: its package root, with wal-log's two roots as one. */
  static String module(JavaClass c) {
    String[] parts = c.getPackageName().split("\\.");
    if (parts.length < 3) {
      return c.getPackageName();
    }
    return switch (parts[2]) {
      case "wal", "pg" -> "wal-log";
      default -> parts[2];
    };
  }

  /** Types in an {@code internal} package are used by their own module only. */
  static ArchRule internalPackagesStayInTheirModule() {
    return classes()
        .that()
        .resideInAPackage("io.zenith..internal..")
        .should(
            new ArchCondition<JavaClass>("be used only by their own module") {
              @Override
              public void check(JavaClass internal, ConditionEvents events) {
                for (Dependency d : internal.getDirectDependenciesToSelf()) {
                  if (!module(d.getOriginClass()).equals(module(internal))) {
                    events.add(SimpleConditionEvent.violated(d, d.getDescription()));
                  }
                }
              }
            })
        // No module may have internal packages yet, and the rule still holds.
        .allowEmptyShould(true);
  }

  /**
   * The key schema and PostgreSQL's layout facts stand alone inside ingest-pipeline (ADR 0006):
   * readers use them without the writer's machinery.
   */
  static ArchRule keySchemaStandsAlone() {
    String[] schema = {"io.zenith.ingest.keys..", "io.zenith.ingest.pg.."};
    return noClasses()
        .that()
        .resideInAnyPackage(schema)
        .should()
        .dependOnClassesThat(
            resideInAPackage("io.zenith.ingest..").and(not(resideInAnyPackage(schema))));
  }

  /**
   * The gateway only wires (issue 10): each of its classes, with its nested classes, uses another
   * class of the gateway, or a library of what the gateway owns (sockets, HTTP, processes, the
   * command line, configuration files). A class there that uses neither is logic that belongs in
   * the module owning its concern. Exempt: exception types, and the classes of {@link
   * #GATEWAY_LEAVES}.
   */
  static final Set<String> WIRING_LIBRARIES =
      Set.of(
          "picocli",
          "reactor.netty",
          "io.netty",
          "com.fasterxml.jackson",
          "io.micrometer.prometheusmetrics",
          // where and how a process logs (LogOutput) is its wiring, as its command line is
          "ch.qos.logback",
          "java.net");

  /** Gateway classes that are the gateway's own business yet need nothing to do it. */
  static final Map<String, String> GATEWAY_LEAVES =
      Map.of("io.zenith.gateway.cli.Table", "how the CLI prints aligned tables");

  static ArchRule gatewayClassesWire() {
    return classes()
        .that()
        .resideInAPackage("io.zenith.gateway..")
        .and()
        .areNotAssignableTo(Throwable.class)
        .should(
            new ArchCondition<JavaClass>("use another class of the gateway") {
              private final Map<String, Boolean> wires = new TreeMap<>();

              @Override
              public void check(JavaClass c, ConditionEvents events) {
                String top = topLevel(c).getName();
                boolean uses =
                    c.getDirectDependenciesFromSelf().stream()
                        .map(d -> d.getTargetClass().getBaseComponentType())
                        .anyMatch(
                            t ->
                                t.getPackageName().startsWith("io.zenith.gateway")
                                        && !topLevel(t).getName().equals(top)
                                    || WIRING_LIBRARIES.stream()
                                        .anyMatch(lib -> t.getPackageName().startsWith(lib))
                                    || t.isAssignableTo(ProcessBuilder.class));
                wires.merge(top, uses, Boolean::logicalOr);
              }

              @Override
              public void finish(ConditionEvents events) {
                wires.forEach(
                    (name, uses) -> {
                      if (!uses && !GATEWAY_LEAVES.containsKey(name)) {
                        events.add(
                            SimpleConditionEvent.violated(
                                name, name + " uses no other class of the gateway"));
                      }
                    });
              }
            });
  }

  private static JavaClass topLevel(JavaClass c) {
    JavaClass t = c;
    while (t.getEnclosingClass().isPresent()) {
      t = t.getEnclosingClass().get();
    }
    return t;
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
    internalPackagesStayInTheirModule().check(main);
    keySchemaStandsAlone().check(main);
    gatewayClassesWire().check(main);
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

  @Test
  void usingAnotherModulesInternalPackageFailsTheRuleNamingBothClasses() {
    JavaClasses classes = new ClassFileImporter().importClasses(ReachesIn.class, Hidden.class);
    // The layering alone allows it (page-serving may use the layer store): this rule catches it.
    EvaluationResult result = internalPackagesStayInTheirModule().evaluate(classes);
    assertThat(result.hasViolation()).isTrue();
    assertThat(String.join("\n", result.getFailureReport().getDetails()))
        .contains(ReachesIn.class.getName())
        .contains(Hidden.class.getName());
  }
}
