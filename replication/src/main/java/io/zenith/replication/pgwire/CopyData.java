package io.zenith.replication.pgwire;

import java.util.Arrays;
import java.util.Objects;

/**
 * {@code d}: a piece of COPY data, in either direction. In streaming replication it wraps the
 * replication sub-protocol messages ({@link ReplicationMessage}).
 *
 * <p>The record owns {@code data}: the decoder allocates a fresh array per message, and encoders
 * only read it. Do not modify it after constructing the message.
 */
public record CopyData(byte[] data) implements BackendMessage, FrontendMessage {
  public CopyData {
    Objects.requireNonNull(data);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof CopyData c && Arrays.equals(data, c.data);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(data);
  }

  @Override
  public String toString() {
    return "CopyData[" + data.length + " bytes]";
  }
}
