package io.zenith.it.safekeeper;

import static io.zenith.it.safekeeper.QuorumTimeline.T;
import static io.zenith.it.safekeeper.QuorumTimeline.flush;
import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.testing.FullDisk;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Faults from outside a safekeeper (issue 4): a compute of another database system, requests about
 * timelines that are not there or that exist with another identity, garbage on its ports, and a
 * full disk (simulated through the WAL log's {@code SegmentAllocator} seam: Linux reports ENOSPC
 * when a segment is preallocated). Each is refused precisely, and the safekeeper stays consistent
 * and goes on serving.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperFaultsTest {
  private static final Logger log = LoggerFactory.getLogger(SafekeeperFaultsTest.class);

  @TempDir Path tmp;

  /**
   * A full disk on safekeeper 1 (safekeeper 3 down, so every commit needs it): the timeline that
   * needs a new segment stops acknowledging with a precise error in its status, its commit waits,
   * its control file and WAL stay valid (a restart finds the same end), another timeline on the
   * same safekeeper goes on committing, and once space is back the WAL continues and the commit
   * completes.
   */
  @Test
  void aFullDiskStopsOnlyTheTimelineThatNeedsSpaceUntilSpaceIsBack() throws Exception {
    FullDisk disk = FullDisk.unlimited();
    try (SafekeeperSet sks = new SafekeeperSet(tmp, 3).disk(1, disk).startAll();
        QuorumTimeline a = QuorumTimeline.start(sks);
        QuorumTimeline b = QuorumTimeline.start(sks)) {
      a.elect();
      a.setCompute(1);
      b.elect();
      b.setCompute(1);
      a.compute().sql("create table t (v text)");
      b.compute().sql("create table u (v int)");
      sks.stop(3);
      disk.setFree(0);

      // More than a segment of WAL: safekeeper 1 cannot create the next one.
      CompletableFuture<String> big =
          a.sqlAsync("insert into t select repeat('x', 1000) from generate_series(1, 20000)");
      a.awaitAll(
          "safekeeper 1 to report the full disk",
          new int[] {1},
          t -> t.intakeError() != null && t.intakeError().contains(FullDisk.ENOSPC));
      TimelineInfo full = a.info(1);
      assertThat(full.intake()).isEqualTo("failed");
      java.util.regex.Matcher m =
          java.util.regex.Pattern.compile(
                  "WAL at \\S+ not stored, resuming at \\S+: cannot create WAL segment \\S+/"
                      + "([0-9A-F]{24})\\.partial: No space left on device")
              .matcher(full.intakeError());
      assertThat(m.matches()).as(full.intakeError()).isTrue();
      int seg = a.identity.segmentSize();
      Lsn missing =
          Lsn.of(WalSegmentName.parse(m.group(1), seg).orElseThrow().segmentNumber() * seg);
      // Nothing of the segment it could not create is acknowledged (retries may still fill the
      // current one up to its last whole record).
      assertThat(flush(full)).isLessThan(missing);
      a.awaitSyncRepWaiters(1);

      // The other timeline of safekeeper 1 has room in its segment and goes on.
      for (int i = 0; i < 20; i++) {
        b.compute().sql("insert into u values (" + i + ")");
      }
      Lsn bEnd = b.lastRecordEnd();
      b.awaitCaughtUp(new int[] {1, 2}, bEnd);
      assertThat(big).isNotDone();
      Lsn held = flush(a.info(1));
      assertThat(held).isLessThan(missing);

      // Still full: a restart opens a valid control file and log, with nothing lost.
      sks.stop(1);
      sks.start(1);
      assertThat(flush(a.info(1))).isGreaterThanOrEqualTo(held).isLessThan(missing);
      assertThat(big).isNotDone();

      disk.setFree(Long.MAX_VALUE);
      assertThat(big.get(T.toSeconds(), TimeUnit.SECONDS)).isEmpty();
      sks.start(3);
      Lsn end = a.lastRecordEnd();
      a.awaitCaughtUp(new int[] {1, 2, 3}, end);
      a.assertSameWal(new int[] {1, 2, 3}, end);
      assertThat(a.info(1).intakeError()).isNull();
      assertThat(disk.refusals()).isPositive();
    }
  }

  /**
   * A compute of another database system is refused (its WAL is never taken, the error names both
   * system ids); a create of an existing timeline with another identity is refused; an unknown
   * timeline is a JSON 404; garbage on the HTTP and libpq ports closes those connections only. The
   * timeline then takes its own compute's WAL as if nothing had happened.
   */
  @Test
  void badInputIsRefusedPreciselyAndTheSafekeeperGoesOn() throws Exception {
    try (SafekeeperSet sks = new SafekeeperSet(tmp, 1).startAll();
        QuorumTimeline q = QuorumTimeline.start(sks);
        PgCluster other = PgCluster.initdb()) {
      other.start();
      q.elect();
      long otherId = PgWal.systemId(other);
      sks.client(1)
          .setCompute(
              q.tenant(),
              q.timeline(),
              new ComputeSource(1, "127.0.0.1", other.port(), "postgres"));
      q.awaitAll(
          "the foreign compute to be refused",
          new int[] {1},
          t -> t.intakeError() != null && t.intakeError().contains("database system"));
      assertThat(q.info(1).intakeError())
          .isEqualTo(
              "the compute at 127.0.0.1:"
                  + other.port()
                  + " is database system "
                  + Long.toUnsignedString(otherId)
                  + ", this timeline belongs to "
                  + Long.toUnsignedString(q.identity.systemId()));
      other.sql("create table x (v int); insert into x values (1)");
      assertThat(flush(q.info(1))).isEqualTo(q.identity.startLsn());

      HttpJson http = new HttpJson(sks.settings(1).httpAddress().getPort());
      String base = "/v1/tenant/" + q.tenant() + "/timeline";
      String before = durableState(q.info(1));
      HttpJson.Response again =
          http.call(
              "POST",
              base,
              "{\"timeline_id\": \""
                  + q.timeline()
                  + "\", \"system_id\": \""
                  + Long.toUnsignedString(otherId)
                  + "\", \"pg_version\": 15, \"wal_segment_size\": 16777216, \"start_lsn\": \""
                  + q.identity.startLsn()
                  + "\"}");
      assertThat(again.status()).as(again.toString()).isEqualTo(409);
      assertThat(again.error())
          .isEqualTo("timeline " + q.tenant() + "/" + q.timeline() + " exists already");
      TimelineId unknown = TimelineId.generate();
      HttpJson.Response missing = http.get(base + "/" + unknown);
      assertThat(missing.status()).isEqualTo(404);
      assertThat(missing.contentType()).isEqualTo("application/json");
      assertThat(missing.error())
          .isEqualTo("timeline " + q.tenant() + "/" + unknown + " is not here");

      assertThat(sendGarbage(sks.settings(1).httpAddress())).as("HTTP port listening").isTrue();
      assertThat(sendGarbage(sks.settings(1).pgAddress())).as("libpq port listening").isTrue();
      assertThat(http.get("/v1/status").status()).isEqualTo(200);
      assertThat(durableState(q.info(1))).as("the timeline is unchanged").isEqualTo(before);

      // Its own compute: taken as if nothing had happened.
      q.setCompute(1);
      q.compute().sql("create table t (v int); insert into t values (1)");
      Lsn end = q.lastRecordEnd();
      q.awaitCaughtUp(new int[] {1}, end);
      q.assertSameWal(new int[] {1}, end);
    }
  }

  /** What a timeline holds (not how its intake is doing). */
  private static String durableState(TimelineInfo t) {
    return List.of(
            t.systemId(),
            t.startLsn(),
            t.term(),
            t.history(),
            t.flushLsn(),
            t.writeLsn(),
            t.commitLsn())
        .toString();
  }

  /**
   * Writes 64 KiB of random bytes to {@code address} and reads until the server closes the
   * connection; false if nothing listens there.
   */
  private static boolean sendGarbage(InetSocketAddress address) throws IOException {
    try (Socket s = new Socket()) {
      try {
        s.connect(address, 5_000);
      } catch (ConnectException e) {
        return false;
      }
      s.setSoTimeout((int) T.toMillis());
      byte[] garbage = new byte[64 * 1024];
      new Random(4).nextBytes(garbage);
      try {
        OutputStream out = s.getOutputStream();
        out.write(garbage);
        out.write("\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        out.flush();
        InputStream in = s.getInputStream();
        while (in.read(new byte[8192]) >= 0) {
          // the server's answer, if any, until it closes
        }
      } catch (SocketException e) {
        // reset by the server: closed as well
      }
      return true;
    }
  }
}
