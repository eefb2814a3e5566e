package io.zenith.it.regress;

import java.nio.file.Path;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestPlan;

/**
 * Starts the shared {@link RegressionRun} as soon as a test plan that holds a fidelity test begins
 * (registered through {@code META-INF/services}), instead of when the first fidelity class runs.
 * The run is latency-bound (every commit of the suite waits for two synchronous standbys), so in
 * the background it costs the other classes little and takes its eight minutes off the suite's wall
 * time (ADR 0019). Plans without a fidelity test start nothing.
 */
public final class EarlyStart implements TestExecutionListener {
  private static final String FIDELITY_CLASSES = RegressionSuiteFidelityTest.class.getName();

  @Override
  public void testPlanExecutionStarted(TestPlan plan) {
    boolean needed =
        plan.getRoots().stream()
            .flatMap(root -> plan.getDescendants(root).stream())
            .anyMatch(
                t ->
                    t.getSource().orElse(null) instanceof ClassSource c
                        && c.getClassName().startsWith(FIDELITY_CLASSES));
    if (needed) {
      RegressionRun.start(Path.of("target/pg-regress"));
    }
  }
}
