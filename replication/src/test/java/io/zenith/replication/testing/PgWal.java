package io.zenith.replication.testing;

import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/** Helpers for tests against a real cluster: WAL bytes from pg_wal, LSN queries, waiting. */
public final class PgWal {
  private PgWal() {}

  /**
   * Configures and starts {@code c} as the compute of a new timeline on {@code safekeepers}
   * safekeepers: replication on, {@code fsync} off, the synchronous quorum {@code ANY <majority>
   * (sk_1, …)}, their slots created, WAL switched to a fresh segment; {@code extra} settings on
   * top.
   *
   * @return the timeline's identity: a new tenant and timeline, the system id, WAL from that
   *     segment
   */
  public static Identity startSafekeeperCompute(
      PgCluster c, int safekeepers, Map<String, String> extra) {
    StringBuilder names = new StringBuilder();
    for (int i = 1; i <= safekeepers; i++) {
      names.append(i == 1 ? "" : ", ").append("sk_").append(i);
    }
    Map<String, String> settings = new LinkedHashMap<>();
    settings.put("wal_level", "replica");
    settings.put("max_wal_senders", "10");
    settings.put("max_replication_slots", "10");
    settings.put("fsync", "off");
    settings.put("synchronous_standby_names", "ANY " + (safekeepers / 2 + 1) + " (" + names + ")");
    settings.putAll(extra);
    c.configure(settings);
    c.start();
    c.sql(
        "set synchronous_commit = local;"
            + " select pg_create_physical_replication_slot('sk_' || i, true)"
            + " from generate_series(1, "
            + safekeepers
            + ") i;"
            + " select pg_switch_wal();");
    int seg = segmentSize(c);
    Lsn start = segmentStart(lsn(c, "pg_current_wal_insert_lsn()"), seg);
    return new Identity(TenantId.generate(), TimelineId.generate(), systemId(c), 15, seg, start);
  }

  /** The cluster's database system identifier. */
  public static long systemId(PgCluster c) {
    return Long.parseUnsignedLong(
        c.sql("set synchronous_commit = local; select system_identifier from pg_control_system()")
            .trim());
  }

  /** Segment size of a cluster (bytes). */
  public static int segmentSize(PgCluster c) {
    return Integer.parseInt(
        c.sql("select setting::int * 1 from pg_settings where name = 'wal_segment_size'").trim());
  }

  public static Lsn lsn(PgCluster c, String expression) {
    return Lsn.parse(c.sql("set synchronous_commit = local; select " + expression).trim());
  }

  /** The segment start at or before {@code lsn}. */
  public static Lsn segmentStart(Lsn lsn, int segmentSize) {
    return Lsn.of(lsn.value() - lsn.segmentOffset(segmentSize));
  }

  /** Passes the bytes [from, to) of the cluster's pg_wal files to {@code sink}, in order. */
  public static void readWal(
      PgCluster c, int timeline, int segmentSize, Lsn from, Lsn to, Consumer<ByteBuffer> sink) {
    readWal(c.walDir(), timeline, segmentSize, from, to, sink);
  }

  /**
   * Passes the bytes [from, to) of the segment files in {@code walDir} to {@code sink}, in order; a
   * segment is read from its {@code .partial} file when there is no complete one (a safekeeper's
   * log directory).
   */
  public static void readWal(
      Path walDir, int timeline, int segmentSize, Lsn from, Lsn to, Consumer<ByteBuffer> sink) {
    ByteBuffer buf = ByteBuffer.allocate(1 << 20);
    long pos = from.value();
    while (pos < to.value()) {
      Lsn at = Lsn.of(pos);
      String name = WalSegmentName.of(timeline, at, segmentSize).fileName(segmentSize);
      Path file = walDir.resolve(name);
      if (!Files.exists(file)
          && Files.exists(walDir.resolve(name + WalSegmentName.PARTIAL_SUFFIX))) {
        file = walDir.resolve(name + WalSegmentName.PARTIAL_SUFFIX);
      }
      long offset = at.segmentOffset(segmentSize);
      long n = Math.min(to.value() - pos, segmentSize - offset);
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
        long done = 0;
        while (done < n) {
          buf.clear().limit((int) Math.min(buf.capacity(), n - done));
          int r = ch.read(buf, offset + done);
          if (r < 0) {
            throw new IllegalStateException(file + " ends before " + Lsn.of(pos + done));
          }
          buf.flip();
          sink.accept(buf);
          done += r;
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      pos += n;
    }
  }

  /** The bytes [from, to) of the cluster's pg_wal files. */
  public static byte[] readWal(PgCluster c, int timeline, int segmentSize, Lsn from, Lsn to) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    readWal(
        c,
        timeline,
        segmentSize,
        from,
        to,
        b -> out.write(b.array(), b.arrayOffset() + b.position(), b.remaining()));
    return out.toByteArray();
  }

  /** Size and SHA-256 of the bytes [from, to) of the segment files in {@code walDir}. */
  public static String digest(Path walDir, int segmentSize, Lsn from, Lsn to) {
    MessageDigest md = sha256();
    readWal(walDir, 1, segmentSize, from, to, md::update);
    return to.minus(from) + " bytes, sha256 " + java.util.HexFormat.of().formatHex(md.digest());
  }

  public static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Waits until {@code value} has not changed for half a second (a producer that stopped being
   * asked for more); fails after {@code timeout}. Returns the settled value.
   */
  public static long awaitStable(Duration timeout, String what, LongSupplier value) {
    long[] last = {Long.MIN_VALUE};
    long[] since = {System.nanoTime()};
    await(
        timeout,
        what,
        () -> {
          long now = value.getAsLong();
          if (now != last[0]) {
            last[0] = now;
            since[0] = System.nanoTime();
          }
          return System.nanoTime() - since[0] > 500_000_000L;
        });
    return last[0];
  }

  /**
   * Polls {@code condition} every 20 ms until it holds; fails after {@code timeout}. For conditions
   * that depend on another process (a server, a socket), where no event can be awaited.
   */
  public static void await(Duration timeout, String what, BooleanSupplier condition) {
    await(timeout, Duration.ofMillis(20), what, condition);
  }

  /**
   * Polls {@code condition} every {@code poll} until it holds; fails after {@code timeout}. A
   * longer poll suits conditions that cost a call to a busy server each time.
   */
  public static void await(
      Duration timeout, Duration poll, String what, BooleanSupplier condition) {
    await(timeout, poll, what, condition, () -> "");
  }

  /**
   * Like {@link #await(Duration, String, BooleanSupplier)}, and on timeout the failure also says
   * what {@code diagnostics} reports then (the state of the parts involved, threads): a wait that
   * times out in CI has no other trace of why.
   */
  public static void await(
      Duration timeout, String what, BooleanSupplier condition, Supplier<String> diagnostics) {
    await(timeout, Duration.ofMillis(20), what, condition, diagnostics);
  }

  private static void await(
      Duration timeout,
      Duration poll,
      String what,
      BooleanSupplier condition,
      Supplier<String> diagnostics) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        String d = diagnostics.get();
        throw new AssertionError(
            "timed out after " + timeout + " waiting for " + what + (d.isEmpty() ? "" : "\n" + d));
      }
      try {
        Thread.sleep(poll);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted waiting for " + what, e);
      }
    }
  }
}
