package io.zenith.replication.pgwire;

/** {@code c}: the sender's COPY data is complete (either direction). */
public record CopyDone() implements BackendMessage, FrontendMessage {
  public static final CopyDone INSTANCE = new CopyDone();
}
