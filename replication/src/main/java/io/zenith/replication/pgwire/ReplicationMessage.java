package io.zenith.replication.pgwire;

import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;
import java.time.Instant;

/**
 * The streaming-replication sub-protocol carried in {@link CopyData} after START_REPLICATION
 * (protocol.sgml, "Streaming Replication Protocol"): XLogData and keepalives from the server,
 * standby status updates from the client. Integers are big-endian; times are microseconds since
 * {@link PgWire#PG_EPOCH}.
 *
 * <pre>
 * 'w' XLogData             : byte 'w', int64 dataStart, int64 walEnd, int64 sendTime, WAL bytes   (25 + n)
 * 'k' PrimaryKeepalive     : byte 'k', int64 walEnd, int64 sendTime, byte replyRequested          (18)
 * 'r' StandbyStatusUpdate  : byte 'r', int64 write, int64 flush, int64 apply, int64 sendTime,
 *                            byte replyRequested                                                 (34)
 * 'h' HotStandbyFeedback   : byte 'h', int64 sendTime, uint32 xmin, uint32 xminEpoch,
 *                            uint32 catalogXmin, uint32 catalogXminEpoch                         (25)
 * </pre>
 */
public sealed interface ReplicationMessage
    permits ReplicationMessage.XLogData,
        ReplicationMessage.PrimaryKeepalive,
        ReplicationMessage.StandbyMessage {

  int XLOG_DATA_HEADER_SIZE = 25;
  int KEEPALIVE_SIZE = 18;
  int STATUS_UPDATE_SIZE = 34;
  int HOT_STANDBY_FEEDBACK_SIZE = 25;

  /** What a standby sends the server during streaming: {@code r} or {@code h}. */
  sealed interface StandbyMessage extends ReplicationMessage
      permits StandbyStatusUpdate, HotStandbyFeedback {}

  /**
   * {@code w}: WAL bytes starting at {@code dataStart}. The bytes are {@code array[offset, offset +
   * length)}; the array is the CopyData's, shared, never to be modified.
   */
  record XLogData(
      Lsn dataStart, Lsn walEnd, long sendTimeMicros, byte[] array, int offset, int length)
      implements ReplicationMessage {
    public XLogData {
      if (offset < 0 || length < 0 || offset + length > array.length) {
        throw new IllegalArgumentException(
            "WAL data [" + offset + ", " + offset + "+" + length + ") exceeds " + array.length);
      }
    }

    /** A heap buffer over the WAL bytes (shares the array). */
    public ByteBuffer data() {
      return ByteBuffer.wrap(array, offset, length).slice();
    }

    /** The CopyData payload of this message (copies the WAL bytes). */
    public CopyData toCopyData() {
      ByteBuffer b = ByteBuffer.allocate(XLOG_DATA_HEADER_SIZE + length);
      b.put((byte) 'w').putLong(dataStart.value()).putLong(walEnd.value()).putLong(sendTimeMicros);
      b.put(array, offset, length);
      return new CopyData(b.array());
    }

    @Override
    public String toString() {
      return "XLogData[start=" + dataStart + ", walEnd=" + walEnd + ", " + length + " bytes]";
    }
  }

  /** {@code k}: the server's WAL end; answer at once when {@code replyRequested}. */
  record PrimaryKeepalive(Lsn walEnd, long sendTimeMicros, boolean replyRequested)
      implements ReplicationMessage {
    /** The CopyData payload of this message. */
    public CopyData toCopyData() {
      ByteBuffer b = ByteBuffer.allocate(KEEPALIVE_SIZE);
      b.put((byte) 'k').putLong(walEnd.value()).putLong(sendTimeMicros);
      b.put((byte) (replyRequested ? 1 : 0));
      return new CopyData(b.array());
    }
  }

  /**
   * {@code r}: the standby's positions. PostgreSQL counts {@code flush} for synchronous commit
   * (remote_apply: {@code apply}; remote_write: {@code write}); 0/0 means unknown.
   */
  record StandbyStatusUpdate(
      Lsn write, Lsn flush, Lsn apply, long sendTimeMicros, boolean replyRequested)
      implements StandbyMessage {

    public static StandbyStatusUpdate of(Lsn write, Lsn flush, Lsn apply, Instant now) {
      return new StandbyStatusUpdate(write, flush, apply, PgWire.toPgMicros(now), false);
    }

    /** The CopyData payload of this update. */
    public CopyData toCopyData() {
      ByteBuffer b = ByteBuffer.allocate(STATUS_UPDATE_SIZE);
      b.put((byte) 'r');
      b.putLong(write.value());
      b.putLong(flush.value());
      b.putLong(apply.value());
      b.putLong(sendTimeMicros);
      b.put((byte) (replyRequested ? 1 : 0));
      return new CopyData(b.array());
    }
  }

  /**
   * {@code h}: the oldest transaction ids a hot standby still needs (a primary keeps the rows they
   * see); 0 means none. Ids are unsigned 32-bit values held in {@code int}s.
   */
  record HotStandbyFeedback(
      long sendTimeMicros, int xmin, int xminEpoch, int catalogXmin, int catalogXminEpoch)
      implements StandbyMessage {

    /** The CopyData payload of this message. */
    public CopyData toCopyData() {
      ByteBuffer b = ByteBuffer.allocate(HOT_STANDBY_FEEDBACK_SIZE);
      b.put((byte) 'h').putLong(sendTimeMicros);
      b.putInt(xmin).putInt(xminEpoch).putInt(catalogXmin).putInt(catalogXminEpoch);
      return new CopyData(b.array());
    }

    @Override
    public String toString() {
      return "HotStandbyFeedback[xmin="
          + Integer.toUnsignedString(xmin)
          + ", xminEpoch="
          + Integer.toUnsignedString(xminEpoch)
          + ", catalogXmin="
          + Integer.toUnsignedString(catalogXmin)
          + ", catalogXminEpoch="
          + Integer.toUnsignedString(catalogXminEpoch)
          + "]";
    }
  }

  /**
   * Parses a CopyData payload the server sent during streaming: XLogData or a keepalive.
   *
   * @throws PgWireException of kind PROTOCOL for an unknown type or a wrong length
   */
  static ReplicationMessage parseServerMessage(byte[] data) {
    if (data.length == 0) {
      throw PgWireException.protocol("empty CopyData message during streaming replication");
    }
    ByteBuffer b = ByteBuffer.wrap(data);
    byte type = b.get();
    switch (type) {
      case 'w' -> {
        if (data.length < XLOG_DATA_HEADER_SIZE) {
          throw PgWireException.protocol(
              "XLogData message of " + data.length + " bytes is shorter than its 25-byte header");
        }
        Lsn start = Lsn.of(b.getLong());
        Lsn end = Lsn.of(b.getLong());
        long time = b.getLong();
        return new XLogData(
            start, end, time, data, XLOG_DATA_HEADER_SIZE, data.length - XLOG_DATA_HEADER_SIZE);
      }
      case 'k' -> {
        if (data.length != KEEPALIVE_SIZE) {
          throw PgWireException.protocol(
              "primary keepalive message of " + data.length + " bytes, expected 18");
        }
        Lsn end = Lsn.of(b.getLong());
        long time = b.getLong();
        return new PrimaryKeepalive(end, time, b.get() != 0);
      }
      default ->
          throw PgWireException.protocol(
              "unknown streaming replication message type 0x"
                  + Integer.toHexString(type & 0xFF)
                  + " in CopyData");
    }
  }

  /**
   * Parses a CopyData payload a standby sent during streaming: a status update or hot standby
   * feedback. Lengths must be exact: a standby that sends anything else is not speaking the
   * protocol.
   *
   * @throws PgWireException of kind PROTOCOL for an unknown type or a wrong length
   */
  static StandbyMessage parseStandbyMessage(byte[] data) {
    if (data.length == 0) {
      throw PgWireException.protocol("empty CopyData message from the standby");
    }
    return switch (data[0]) {
      case 'r' -> parseStatusUpdate(data);
      case 'h' -> {
        if (data.length != HOT_STANDBY_FEEDBACK_SIZE) {
          throw PgWireException.protocol(
              "hot standby feedback message of "
                  + data.length
                  + " bytes, expected "
                  + HOT_STANDBY_FEEDBACK_SIZE);
        }
        ByteBuffer b = ByteBuffer.wrap(data, 1, HOT_STANDBY_FEEDBACK_SIZE - 1);
        yield new HotStandbyFeedback(b.getLong(), b.getInt(), b.getInt(), b.getInt(), b.getInt());
      }
      default ->
          throw PgWireException.protocol(
              "unknown standby message type 0x" + hexType(data) + " in CopyData");
    };
  }

  /** Parses a CopyData payload a standby sent: a status update. */
  static StandbyStatusUpdate parseStatusUpdate(byte[] data) {
    if (data.length != STATUS_UPDATE_SIZE || data[0] != 'r') {
      throw PgWireException.protocol(
          "not a standby status update: "
              + data.length
              + " bytes (expected "
              + STATUS_UPDATE_SIZE
              + "), type 0x"
              + hexType(data));
    }
    ByteBuffer b = ByteBuffer.wrap(data, 1, STATUS_UPDATE_SIZE - 1);
    return new StandbyStatusUpdate(
        Lsn.of(b.getLong()), Lsn.of(b.getLong()), Lsn.of(b.getLong()), b.getLong(), b.get() != 0);
  }

  private static String hexType(byte[] data) {
    return data.length == 0 ? "(none)" : Integer.toHexString(data[0] & 0xFF);
  }
}
