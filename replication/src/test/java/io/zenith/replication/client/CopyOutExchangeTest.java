package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.channel.embedded.EmbeddedChannel;
import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.testing.NettyLeakCheck;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.test.subscriber.TestSubscriber;

/**
 * {@link CopyOutExchange} on an {@link EmbeddedChannel}: which messages it accepts in which phase,
 * and that socket reads follow the subscriber's demand plus the read-ahead.
 */
@ExtendWith(NettyLeakCheck.class)
class CopyOutExchangeTest {
  private static final int READ_AHEAD = 2;

  private EmbeddedChannel channel;
  private ClientHandler handler;

  @BeforeEach
  void setUp() {
    handler = new ClientHandler("c0", "test:0");
    channel = new EmbeddedChannel(handler);
  }

  @AfterEach
  void tearDown() {
    channel.finishAndReleaseAll();
  }

  private TestSubscriber<ByteBuffer> start(String sql) {
    TestSubscriber<ByteBuffer> ts = TestSubscriber.<ByteBuffer>builder().initialRequest(0).build();
    CopyOutExchange ex = new CopyOutExchange(handler, ts, sql, READ_AHEAD);
    ts.onSubscribe(ex);
    handler.submit(ex);
    channel.runPendingTasks();
    Object sent = channel.readOutbound();
    assertThat(sent).isEqualTo(new FrontendMessage.Query(sql));
    return ts;
  }

  private void in(BackendMessage... messages) {
    for (BackendMessage m : messages) {
      channel.writeInbound(m);
    }
    channel.runPendingTasks();
  }

  private static CopyData data(String s) {
    return new CopyData(s.getBytes(StandardCharsets.US_ASCII));
  }

  private static String text(ByteBuffer b) {
    return StandardCharsets.US_ASCII.decode(b.duplicate()).toString();
  }

  private boolean reading() {
    return channel.config().isAutoRead();
  }

  @Test
  void readsFollowDemandPlusReadAheadAndCompleteAfterReadyForQuery() {
    TestSubscriber<ByteBuffer> ts = start("basebackup x y");
    assertThat(reading()).as("before the CopyOutResponse").isTrue();
    in(new CopyOutResponse(1, List.of()));
    assertThat(reading()).as("copying, queue empty, no demand").isTrue();
    in(data("a"));
    assertThat(reading()).as("one of two read-ahead buffers queued").isTrue();
    in(data("b"));
    assertThat(reading()).as("read-ahead full, no demand: reads stop").isFalse();

    ts.request(1);
    channel.runPendingTasks();
    assertThat(ts.getReceivedOnNext()).map(CopyOutExchangeTest::text).containsExactly("a");
    assertThat(reading()).as("one queued again, below the read-ahead").isTrue();

    ts.request(5);
    channel.runPendingTasks();
    assertThat(ts.getReceivedOnNext()).map(CopyOutExchangeTest::text).containsExactly("a", "b");
    assertThat(reading()).as("demand outstanding").isTrue();
    in(data("c"), data("d"));
    assertThat(ts.getReceivedOnNext()).hasSize(4);
    in(CopyDone.INSTANCE, new CommandComplete("COPY 0"));
    assertThat(ts.isTerminated()).as("not before ReadyForQuery").isFalse();
    in(ReadyForQuery.IDLE);
    assertThat(ts.isTerminatedComplete()).isTrue();
    assertThat(reading()).as("idle connection reads").isTrue();
  }

  @Test
  void completionWaitsForTheQueueToBeDrained() {
    TestSubscriber<ByteBuffer> ts = start("copy");
    in(
        new CopyOutResponse(0, List.of()),
        data("1"),
        data("2"),
        data("3"),
        CopyDone.INSTANCE,
        new CommandComplete("COPY 3"),
        ReadyForQuery.IDLE);
    assertThat(ts.isTerminated()).isFalse();
    ts.request(2);
    channel.runPendingTasks();
    assertThat(ts.isTerminated()).isFalse();
    ts.request(1);
    channel.runPendingTasks();
    assertThat(ts.getReceivedOnNext())
        .map(CopyOutExchangeTest::text)
        .containsExactly("1", "2", "3");
    assertThat(ts.isTerminatedComplete()).isTrue();
  }

  @Test
  void anErrorDuringTheCopyFollowsTheBuffersBeforeItAndTheNextQueryRuns() {
    TestSubscriber<ByteBuffer> ts = start("copy");
    in(
        new CopyOutResponse(0, List.of()),
        data("1"),
        new ErrorResponse(PgNotice.error("22012", "division by zero")),
        ReadyForQuery.IDLE);
    ts.request(10);
    channel.runPendingTasks();
    assertThat(ts.getReceivedOnNext()).hasSize(1);
    assertThat(ts.expectTerminalError())
        .isInstanceOfSatisfying(
            PgServerException.class,
            e -> {
              assertThat(e.sqlState()).isEqualTo("22012");
              assertThat(e.getMessage()).startsWith("c0 test:0: query \"copy\": ERROR 22012");
            });
    assertThat(channel.isActive()).isTrue();
    // the connection takes the next request
    start("copy again");
  }

  @Test
  void aQueryWithoutCopyFailsWithoutClosingTheConnection() {
    TestSubscriber<ByteBuffer> ts = start("select 1");
    in(
        new BackendMessage.RowDescription(
            List.of(new BackendMessage.Field("x", 0, (short) 0, 23, (short) 4, -1, (short) 0))),
        new BackendMessage.DataRow(List.of("1".getBytes(StandardCharsets.US_ASCII))),
        new CommandComplete("SELECT 1"),
        ReadyForQuery.IDLE);
    assertThat(ts.expectTerminalError())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("returned rows; copyOut needs exactly one COPY TO STDOUT");
    assertThat(channel.isActive()).isTrue();
  }

  @Test
  void copyFromStdinIsRefusedWithCopyFail() {
    TestSubscriber<ByteBuffer> ts = start("copy t from stdin");
    in(new BackendMessage.CopyInResponse(0, List.of()));
    Object sent = channel.readOutbound();
    assertThat(sent).isInstanceOf(FrontendMessage.CopyFail.class);
    in(new ErrorResponse(PgNotice.error("57014", "COPY from stdin failed")), ReadyForQuery.IDLE);
    assertThat(ts.expectTerminalError())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("started COPY FROM STDIN");
  }

  @Test
  void cancelDiscardsTheRestAndKeepsReadingUntilReadyForQuery() {
    TestSubscriber<ByteBuffer> ts = start("copy");
    in(new CopyOutResponse(0, List.of()), data("1"), data("2"));
    assertThat(reading()).isFalse();
    ts.cancel();
    channel.runPendingTasks();
    assertThat(reading()).as("discarding the rest").isTrue();
    in(data("3"), CopyDone.INSTANCE, new CommandComplete("COPY 3"), ReadyForQuery.IDLE);
    assertThat(ts.getReceivedOnNext()).isEmpty();
    assertThat(ts.isTerminated()).isFalse();
    start("next");
  }

  @Test
  void aLostConnectionFailsAfterTheQueuedBuffers() {
    TestSubscriber<ByteBuffer> ts = start("copy");
    in(new CopyOutResponse(0, List.of()), data("1"));
    channel.close();
    channel.runPendingTasks();
    assertThat(ts.isTerminated()).isFalse();
    ts.request(1);
    channel.runPendingTasks();
    assertThat(ts.getReceivedOnNext()).hasSize(1);
    assertThat(ts.expectTerminalError())
        .isInstanceOfSatisfying(
            PgWireException.class,
            e -> assertThat(e.kind()).isEqualTo(PgWireException.Kind.CONNECTION_LOST));
  }
}
