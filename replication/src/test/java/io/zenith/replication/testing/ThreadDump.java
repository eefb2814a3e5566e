package io.zenith.replication.testing;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.util.Arrays;
import java.util.function.Predicate;
import java.util.stream.Collectors;

/**
 * The stacks of this JVM's threads, for a test's failure message: a wait that timed out in CI
 * leaves no other trace of where a stage stood still. Thread-safe (stateless).
 */
public final class ThreadDump {
  private ThreadDump() {}

  /** The threads whose names {@code named} accepts, each with its state and full stack. */
  public static String of(Predicate<String> named) {
    ThreadInfo[] all = ManagementFactory.getThreadMXBean().dumpAllThreads(true, true);
    return Arrays.stream(all)
        .filter(t -> named.test(t.getThreadName()))
        .map(
            t ->
                "\""
                    + t.getThreadName()
                    + "\" "
                    + t.getThreadState()
                    + (t.getLockName() == null ? "" : " on " + t.getLockName())
                    + Arrays.stream(t.getStackTrace())
                        .map(f -> "\n    at " + f)
                        .collect(Collectors.joining()))
        .collect(Collectors.joining("\n"));
  }

  /** The threads whose names start with one of {@code prefixes}. */
  public static String startingWith(String... prefixes) {
    return of(n -> Arrays.stream(prefixes).anyMatch(n::startsWith));
  }
}
