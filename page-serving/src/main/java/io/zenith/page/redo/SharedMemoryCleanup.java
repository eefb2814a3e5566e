package io.zenith.page.redo;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Removes the System V shared memory segment a killed backend leaves behind. PostgreSQL creates a
 * small segment (its "interlock", 56 bytes) even in single-user mode and removes it at a normal
 * exit; after SIGKILL or a PANIC it stays, with no process attached, until reboot. Since every redo
 * process gets a fresh data directory, PostgreSQL's own check at the next start never sees it.
 *
 * <p>The segment is found through the dead backend's {@code postmaster.pid} (line 1: pid, negative
 * for a single-user backend; line 7: key and id) and removed with {@code ipcrm} only if {@code
 * /proc/sysvipc/shm} confirms the same id, created by that pid, with nothing attached. Stateless
 * and thread-safe.
 */
final class SharedMemoryCleanup {
  private SharedMemoryCleanup() {}

  private static final Logger log = LoggerFactory.getLogger(SharedMemoryCleanup.class);
  private static final Path SYSVIPC_SHM = Path.of("/proc/sysvipc/shm");

  /** Removes the orphaned segment named by {@code postmasterPid}, if there is one. */
  static void removeOrphan(Path postmasterPid) {
    try {
      if (!Files.exists(postmasterPid)) {
        return;
      }
      List<String> lines = Files.readAllLines(postmasterPid, StandardCharsets.US_ASCII);
      if (lines.size() < 7) {
        return;
      }
      long pid = Math.abs(Long.parseLong(lines.get(0).strip()));
      String[] keyAndId = lines.get(6).strip().split("\\s+");
      if (keyAndId.length < 2) {
        return;
      }
      String shmid = keyAndId[1];
      if (!orphanedSegmentOf(shmid, pid)) {
        return;
      }
      Process p =
          new ProcessBuilder("ipcrm", "-m", shmid)
              .redirectErrorStream(true)
              .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
        log.warn("cannot remove shared memory segment {} of dead backend {}: {}", shmid, pid, out);
      }
    } catch (IOException | NumberFormatException e) {
      log.warn("cannot clean up the shared memory of {}: {}", postmasterPid, e.toString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Columns of /proc/sysvipc/shm: key shmid perms size cpid lpid nattch ... */
  private static boolean orphanedSegmentOf(String shmid, long pid) throws IOException {
    if (!Files.isReadable(SYSVIPC_SHM)) {
      return false;
    }
    for (String line : Files.readAllLines(SYSVIPC_SHM, StandardCharsets.US_ASCII)) {
      String[] c = line.strip().split("\\s+");
      if (c.length > 6
          && c[1].equals(shmid)
          && c[4].equals(Long.toString(pid))
          && c[6].equals("0")) {
        return true;
      }
    }
    return false;
  }
}
