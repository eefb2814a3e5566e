package io.zenith.wal;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A second process for {@link DirectoryLockTest}: {@code DirectoryLockProbe <dir> <file>} tries to
 * lock the directory; on success prints {@code locked} and holds the lock until its stdin ends, on
 * refusal prints the exception's message and exits 1.
 */
final class DirectoryLockProbe {
  private DirectoryLockProbe() {}

  @SuppressWarnings("try") // the lock is held, not used
  public static void main(String[] args) throws IOException {
    try (DirectoryLock lock = DirectoryLock.acquire(Path.of(args[0]), args[1])) {
      System.out.println("locked");
      System.out.flush();
      while (System.in.read() >= 0) {
        // hold until stdin is closed
      }
    } catch (DirectoryLock.InUseException e) {
      System.out.println(e.getMessage());
      System.out.flush();
      System.exit(1);
    }
  }
}
