package io.zenith.replication.pgwire;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Messages a PostgreSQL client sends (the "F" messages of protocol.sgml) that this module decodes
 * or encodes. Text is UTF-8. Records are immutable.
 */
public sealed interface FrontendMessage
    permits FrontendMessage.SslRequest,
        FrontendMessage.GssEncRequest,
        FrontendMessage.CancelRequest,
        FrontendMessage.StartupMessage,
        FrontendMessage.PasswordMessage,
        FrontendMessage.Query,
        FrontendMessage.CopyFail,
        FrontendMessage.Terminate,
        CopyData,
        CopyDone {

  /** Startup phase: asks whether the server will speak TLS. */
  record SslRequest() implements FrontendMessage {
    public static final SslRequest INSTANCE = new SslRequest();
  }

  /** Startup phase: asks whether the server will speak GSSAPI encryption. */
  record GssEncRequest() implements FrontendMessage {
    public static final GssEncRequest INSTANCE = new GssEncRequest();
  }

  /** Startup phase, on a new connection: cancel the query of this backend. */
  record CancelRequest(int processId, int secretKey) implements FrontendMessage {}

  /**
   * Startup phase: protocol version and parameters ({@code user} is required; {@code database},
   * {@code application_name}, {@code replication}, {@code options}, GUCs...). Parameter order is
   * kept.
   */
  record StartupMessage(int protocolVersion, Map<String, String> parameters)
      implements FrontendMessage {
    public StartupMessage {
      parameters = Collections.unmodifiableMap(new LinkedHashMap<>(parameters));
    }

    public int majorVersion() {
      return protocolVersion >>> 16;
    }

    public int minorVersion() {
      return protocolVersion & 0xFFFF;
    }
  }

  /**
   * {@code p} answering AuthenticationCleartextPassword or AuthenticationMd5Password: the password,
   * or {@code "md5" + hex} for MD5.
   */
  record PasswordMessage(String password) implements FrontendMessage {
    public PasswordMessage {
      Objects.requireNonNull(password);
    }

    @Override
    public String toString() {
      return "PasswordMessage[***]";
    }
  }

  /** {@code Q}: a simple query (one or more SQL or replication commands). */
  record Query(String sql) implements FrontendMessage {
    public Query {
      Objects.requireNonNull(sql);
    }
  }

  /** {@code f}: COPY FROM STDIN failed on the client side; the message says why. */
  record CopyFail(String message) implements FrontendMessage {
    public CopyFail {
      Objects.requireNonNull(message);
    }
  }

  /** {@code X}: the client closes the session. */
  record Terminate() implements FrontendMessage {
    public static final Terminate INSTANCE = new Terminate();
  }
}
