package io.zenith.it.safekeeper;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.gateway.safekeeper.SafekeeperProcess;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.it.cli.AotCaches;
import io.zenith.it.support.TestPorts;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.SegmentAllocator;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code n} safekeeper processes, each on its own data directory and free loopback ports,
 * configured as peers of each other; any of them can be stopped and started again on the same
 * directory and ports. Either their servers run in this JVM ({@link SafekeeperProcess}; the
 * default, cheap, and they can be given a {@link SegmentAllocator}) or, with {@link #osProcesses},
 * each is a real {@code zenith safekeeper run} OS process (the launcher and jar), which {@link
 * #kill} can SIGKILL and {@link #pause} / {@link #resume} SIGSTOP / SIGCONT. Lag limits default to
 * off (no pageserver reads from them here). Not thread-safe; close it.
 */
public final class SafekeeperSet implements AutoCloseable {
  private final Path root;
  private final List<SafekeeperSettings> settings = new ArrayList<>();

  /** OS processes not yet stopped: a test JVM that dies must not leave them running. */
  private static final java.util.Set<Process> LIVE =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime()
        .addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly), "sk-reaper"));
  }

  private final SafekeeperProcess[] running;
  private final Process[] os;
  private final SegmentAllocator[] disks;
  private boolean osProcesses;

  public SafekeeperSet(Path root, int n) {
    this.root = root;
    this.running = new SafekeeperProcess[n];
    this.os = new Process[n];
    this.disks = new SegmentAllocator[n];
    java.util.Arrays.fill(disks, SegmentAllocator.ZEROS);
    List<SafekeeperSettings.Peer> all = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      all.add(new SafekeeperSettings.Peer(i, "127.0.0.1:" + freePort(), "127.0.0.1:" + freePort()));
    }
    for (SafekeeperSettings.Peer me : all) {
      settings.add(
          new SafekeeperSettings(
                  me.id(),
                  me.http(),
                  me.pg(),
                  "0",
                  "0",
                  "0",
                  all.stream().filter(p -> !p.id().equals(me.id())).toList())
              .validate());
    }
  }

  /** Makes {@link #start} run each safekeeper as a {@code zenith safekeeper run} OS process. */
  public SafekeeperSet osProcesses() {
    launcher();
    osProcesses = true;
    return this;
  }

  /** Extra environment of OS process {@code id} from its next start on; null removes a name. */
  private final java.util.Map<Integer, java.util.Map<String, String>> env =
      new java.util.HashMap<>();

  /**
   * Sets (or, with {@code value} null, removes) an environment variable of OS process {@code id}.
   */
  SafekeeperSet env(int id, String name, String value) {
    java.util.Map<String, String> m = env.computeIfAbsent(id, k -> new java.util.HashMap<>());
    if (value == null) {
      m.remove(name);
    } else {
      m.put(name, value);
    }
    return this;
  }

  /**
   * Waits until OS process {@code id} exits by itself (within {@code timeout}) and returns its exit
   * code; it then counts as not running.
   */
  int awaitExit(int id, Duration timeout) throws InterruptedException {
    Process p = os[id - 1];
    if (p == null) {
      throw new IllegalStateException("safekeeper " + id + " is not a running OS process");
    }
    if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      throw new AssertionError("safekeeper " + id + " still runs after " + timeout);
    }
    os[id - 1] = null;
    LIVE.remove(p);
    return p.exitValue();
  }

  /** Whether OS process {@code id} is alive. */
  boolean isAlive(int id) {
    Process p = os[id - 1];
    return p != null && p.isAlive();
  }

  /** Where in-JVM safekeeper {@code id}'s WAL segments get their space from its next start. */
  SafekeeperSet disk(int id, SegmentAllocator disk) {
    disks[id - 1] = disk;
    return this;
  }

  /** The {@code zenith} launcher; the test is skipped when the jar is not built. */
  static Path launcher() {
    Path root = Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();
    Path jar = root.resolve("gateway/target/zenith.jar");
    assumeTrue(Files.isRegularFile(jar), () -> jar + " is not built (run in `mvn verify`)");
    return root.resolve("zenith");
  }

  /** A port for a server a test starts (and may restart): {@link TestPorts#free}. */
  static int freePort() {
    return TestPorts.free();
  }

  public int size() {
    return running.length;
  }

  public Path dataDir(int id) {
    return root.resolve("sk" + id);
  }

  public SafekeeperSettings settings(int id) {
    return settings.get(id - 1);
  }

  /** Changes the settings of safekeeper {@code id} from its next start on (before the first). */
  public SafekeeperSet configure(
      int id, java.util.function.UnaryOperator<SafekeeperSettings> change) {
    settings.set(id - 1, change.apply(settings.get(id - 1)).validate());
    return this;
  }

  /**
   * Starts safekeeper {@code id} (writing its {@code safekeeper.toml} the first time); an OS
   * process is started once its API answers.
   */
  public void start(int... ids) {
    for (int id : ids) {
      launch(id);
    }
    for (int id : ids) {
      awaitUp(id);
    }
  }

  /** Starts safekeeper {@code id}; an OS process may not answer yet ({@link #awaitUp}). */
  private void launch(int id) {
    try {
      Path dir = dataDir(id);
      Files.createDirectories(dir);
      settings(id).write(dir);
      if (!osProcesses) {
        running[id - 1] = SafekeeperProcess.start(dir, SafekeeperSettings.load(dir), disks[id - 1]);
        return;
      }
      ProcessBuilder pb =
          new ProcessBuilder(launcher().toString(), "safekeeper", "run", "-D", dir.toString())
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.appendTo(log(id).toFile()));
      // INFO, as the control plane runs its servers: tests read what a safekeeper did.
      // The AOT cache (io.zenith.it.cli.AotCaches) spares each start seconds of class loading.
      pb.environment()
          .put(
              "ZENITH_JAVA_OPTS",
              ("-Dzenith.log.level=INFO -Xmx512m " + AotCaches.safekeeperRun()).strip());
      pb.environment().putAll(env.getOrDefault(id, java.util.Map.of()));
      os[id - 1] = pb.start();
      LIVE.add(os[id - 1]);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Waits until OS process {@code id} answers on its API (nothing to wait for in this JVM). */
  private void awaitUp(int id) {
    Process p = os[id - 1];
    if (p == null) {
      return;
    }
    SafekeeperClient c = client(id);
    PgWal.await(
        Duration.ofSeconds(90),
        "safekeeper " + id + " to answer",
        () -> {
          if (!p.isAlive()) {
            throw new AssertionError("safekeeper " + id + " exited: " + logTail(id));
          }
          try {
            return c.status().id() == id;
          } catch (RuntimeException e) {
            return false;
          }
        });
  }

  /** What OS process {@code id} printed, all its runs appended. */
  Path log(int id) {
    return root.resolve("sk" + id + ".log");
  }

  /** The end of what OS process {@code id} printed (empty for an in-JVM one). */
  String logTail(int id) {
    try {
      if (!Files.exists(log(id))) {
        return "";
      }
      String s = Files.readString(log(id));
      return s.substring(Math.max(0, s.length() - 6000));
    } catch (IOException e) {
      return e.toString();
    }
  }

  /** SIGKILLs OS process {@code id} and waits until it is gone. */
  void kill(int id) {
    signal(id, "KILL");
  }

  /**
   * SIGSTOPs OS process {@code id}: its sockets stay open (connections to it stay up, new ones are
   * accepted by the kernel) and it answers nothing until {@link #resume}. Calls to its API block
   * meanwhile. The process is the safekeeper's JVM itself (the launcher {@code exec}s java, and no
   * {@code runuser} sits in between), so there is no parent to stop or resume as well.
   */
  public void pause(int id) {
    signal(javaPid(id), "STOP");
  }

  /** SIGCONTs OS process {@code id} after {@link #pause}; harmless if it is not stopped. */
  public void resume(int id) {
    signal(javaPid(id), "CONT");
  }

  /** The pid of OS process {@code id}, checked to be the JVM (not a shell still to exec it). */
  private long javaPid(int id) {
    Process p = os[id - 1];
    if (p == null) {
      throw new IllegalStateException("safekeeper " + id + " is not a running OS process");
    }
    java.util.Optional<String> cmd = p.info().command();
    if (cmd.isPresent() && !cmd.get().endsWith("/java")) {
      throw new IllegalStateException(
          "safekeeper " + id + "'s process " + p.pid() + " runs " + cmd.get() + ", not java");
    }
    return p.pid();
  }

  private void signal(int id, String signal) {
    Process p = os[id - 1];
    os[id - 1] = null;
    if (p == null) {
      return;
    }
    signal(p.pid(), signal);
    try {
      LIVE.remove(p);
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException("safekeeper " + id + " did not stop on SIG" + signal);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /**
   * Sends {@code signal} ({@code KILL}, {@code TERM}, {@code STOP}, {@code CONT}) to process {@code
   * pid} with the shell's kill.
   */
  static void signal(long pid, String signal) {
    try {
      int rc =
          new ProcessBuilder("sh", "-c", "kill -" + signal + " " + pid)
              .inheritIO()
              .start()
              .waitFor();
      if (rc != 0) {
        throw new IllegalStateException(
            "kill -" + signal + " " + pid + " failed (exit " + rc + ")");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  boolean isRunning(int id) {
    return running[id - 1] != null || os[id - 1] != null;
  }

  public SafekeeperSet startAll() {
    start(java.util.stream.IntStream.rangeClosed(1, running.length).toArray());
    return this;
  }

  /** Stops safekeeper {@code id} cleanly (an OS process by SIGTERM). */
  public void stop(int id) {
    signal(id, "TERM");
    SafekeeperProcess p = running[id - 1];
    running[id - 1] = null;
    if (p != null) {
      p.close();
    }
  }

  public SafekeeperProcess process(int id) {
    SafekeeperProcess p = running[id - 1];
    if (p == null) {
      throw new IllegalStateException("safekeeper " + id + " is not running in this JVM");
    }
    return p;
  }

  /** A client of safekeeper {@code id}'s API (it need not run). */
  public SafekeeperClient client(int id) {
    InetSocketAddress http = settings(id).httpAddress();
    return new SafekeeperClient(id, http, Duration.ofSeconds(120));
  }

  public List<Election.Member> members(TenantId tenant, TimelineId timeline) {
    List<Election.Member> m = new ArrayList<>();
    for (int i = 1; i <= running.length; i++) {
      m.add(client(i).member(tenant, timeline));
    }
    return m;
  }

  /** Safekeeper {@code id}'s log directory of a timeline (WAL segments, control file). */
  Path timelineDir(int id, TenantId tenant, TimelineId timeline) {
    return dataDir(id).resolve(tenant.toString()).resolve(timeline.toString());
  }

  /** Stops everything; OS processes by SIGKILL (nothing to keep). */
  @Override
  public void close() {
    for (int i = 1; i <= running.length; i++) {
      kill(i);
      stop(i);
    }
  }
}
