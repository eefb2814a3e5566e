package io.zenith.wal.testing;

import io.zenith.wal.Fsync;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

/**
 * An {@link Fsync.Device} for tests: records every fsync (and every synced library write) by path,
 * in order, and fails the {@code n}-th one whose path {@code which} accepts as Linux reports a
 * failed fsync ({@code IOException("Input/output error")}); every other call goes to the operating
 * system. Installed with {@link #install()} in a try-with-resources block. Thread-safe.
 */
public final class FsyncSpy implements Fsync.Device {
  public static final String EIO = "Input/output error";

  private final List<Path> calls = new ArrayList<>();
  private final Predicate<Path> which;
  private final long failAt;
  private final AtomicLong matched = new AtomicLong();

  private FsyncSpy(Predicate<Path> which, long failAt) {
    this.which = which;
    this.failAt = failAt;
  }

  /** Records, fails nothing. */
  public static FsyncSpy recording() {
    return new FsyncSpy(p -> false, 0);
  }

  /** Fails the {@code n}-th (1-based) fsync of a path {@code which} accepts. */
  public static FsyncSpy failing(int n, Predicate<Path> which) {
    return new FsyncSpy(which, n);
  }

  /** Fails the {@code n}-th fsync of a path whose file name ends with {@code suffix}. */
  public static FsyncSpy failingName(int n, String suffix) {
    return failing(n, p -> p.getFileName().toString().endsWith(suffix));
  }

  /** Makes this the device until closed. */
  public Fsync.Installed install() {
    return Fsync.use(this);
  }

  /** Every path fsynced (or attempted), in order. */
  public synchronized List<Path> calls() {
    return List.copyOf(calls);
  }

  /** How many fsyncs of {@code path} were attempted (the failed one included). */
  public synchronized long count(Path path) {
    return calls.stream().filter(path::equals).count();
  }

  @Override
  public void force(FileChannel channel, Path path, boolean metadata) throws IOException {
    check(path);
    Fsync.OS.force(channel, path, metadata);
  }

  @Override
  public void beforeSyncedWrite(Path path) throws IOException {
    check(path);
  }

  private void check(Path path) throws IOException {
    synchronized (this) {
      calls.add(path);
    }
    if (which.test(path) && matched.incrementAndGet() == failAt) {
      throw new IOException(EIO);
    }
  }
}
