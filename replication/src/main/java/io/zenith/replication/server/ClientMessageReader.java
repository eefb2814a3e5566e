package io.zenith.replication.server;

import io.zenith.replication.pgwire.FrontendMessage;

/**
 * A response in progress that takes the client's messages as they come (a CopyBoth stream), rather
 * than leaving them queued until the command ends. Called on the connection's event loop only.
 */
interface ClientMessageReader {
  /** Whether the client's messages go to this reader now. */
  boolean readsClientMessages();

  /**
   * Whether the session should read the client now; false stops reading until it is asked again.
   */
  default boolean wantsClientMessages() {
    return true;
  }

  /** One message of the client. */
  void onClientMessage(FrontendMessage m);
}
