package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Peer recovery of a timeline a safekeeper never had: three safekeeper processes (in this JVM, real
 * sockets), the third stopped before the timeline is created on the other two. Once it runs again,
 * gossip creates the timeline there with the peers' identity and peer recovery fills it, with no
 * compute running and no election.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperLearnTimelineTest {
  @TempDir Path tmp;
  private SafekeeperSet sks;
  private QuorumTimeline q;

  @AfterEach
  void stop() {
    QuorumTimeline.closeAll(q, sks);
  }

  @Test
  void aSafekeeperThatWasDownWhenTheTimelineWasCreatedLearnsItAndCatchesUpWithoutACompute()
      throws Exception {
    sks = new SafekeeperSet(tmp, 3).startAll();
    sks.stop(3);
    q = QuorumTimeline.start(sks, 1, 2);
    Election.Result r = q.elect();
    assertThat(r.members()).containsExactlyInAnyOrder(1, 2);
    q.setCompute(r.term());
    // More than a segment of WAL, committed by safekeepers 1 and 2.
    q.compute()
        .sql(
            "create table t (id int primary key, v text);"
                + " insert into t select i, repeat('z', 300) from generate_series(1, 50000) i");
    Lsn end = q.lastRecordEnd();
    q.awaitCaughtUp(new int[] {1, 2}, end);
    assertThat(end.value() / q.identity.segmentSize())
        .isGreaterThan(q.identity.startLsn().value() / q.identity.segmentSize());

    // No compute from here on. Its shutdown waited until both had flushed its last record.
    q.compute().stop();
    Lsn flushed = QuorumTimeline.flush(q.info(1));
    assertThat(flushed).isGreaterThanOrEqualTo(end);
    assertThat(QuorumTimeline.flush(q.info(2))).isEqualTo(flushed);
    assertThat(Files.exists(q.walDir(3))).isFalse();

    sks.start(3);
    try {
      PgWal.await(
          QuorumTimeline.T,
          "safekeeper 3 to learn the timeline and hold its WAL up to " + flushed,
          () -> {
            try {
              return QuorumTimeline.flush(q.info(3)).equals(flushed);
            } catch (JsonHttpClient.ApiError e) {
              if (e.status() == 404) {
                return false; // not learned yet
              }
              throw e;
            }
          });
    } catch (AssertionError e) {
      throw new AssertionError(e.getMessage() + q.describe(1, 2, 3), e);
    }
    TimelineInfo three = q.info(3);
    TimelineInfo one = q.info(1);
    assertThat(three.systemId()).isEqualTo(Long.toUnsignedString(q.identity.systemId()));
    assertThat(three.startLsn()).isEqualTo(q.identity.startLsn().toString());
    assertThat(three.walSegmentSize()).isEqualTo(q.identity.segmentSize());
    assertThat(three.history()).isEqualTo(one.history());
    // No election: every safekeeper is still in the term elected above.
    for (int id = 1; id <= 3; id++) {
      assertThat(q.info(id).term()).as("safekeeper %d's term", id).isEqualTo(r.term());
    }
    // The WAL, read from the segment files: the same on all three and the compute's own.
    String expected = q.computeDigest(flushed);
    for (int id = 1; id <= 3; id++) {
      assertThat(q.digest(id, flushed))
          .as("safekeeper %d's WAL up to %s", id, flushed)
          .isEqualTo(expected);
    }
    q.awaitAll(
        "safekeeper 3 to know " + flushed + " as committed",
        new int[] {3},
        t -> !QuorumTimeline.commit(t).isBefore(flushed));
  }
}
