package io.zenith.replication.client;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationCleartextPassword;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationMd5Password;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOk;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOther;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSasl;
import io.zenith.replication.pgwire.BackendMessage.BackendKeyData;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.NegotiateProtocolVersion;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWire;
import io.zenith.replication.pgwire.PgWireException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.MonoSink;

/**
 * StartupMessage, authentication (trust, cleartext password, MD5), then ParameterStatus and
 * BackendKeyData up to the first ReadyForQuery. SASL (SCRAM), GSSAPI, SSPI and Kerberos are not
 * implemented: the exchange fails with a {@link PgWireException.Kind#AUTHENTICATION} error naming
 * the method, and the connection is closed.
 */
final class StartupExchange implements Exchange {
  private final PgConnectOptions options;
  private final PgConnection connection;
  private final MonoSink<PgConnection> sink;
  private @Nullable ClientHandler handler;
  private boolean authenticated;

  StartupExchange(PgConnectOptions options, PgConnection connection, MonoSink<PgConnection> sink) {
    this.options = options;
    this.connection = connection;
    this.sink = sink;
  }

  @Override
  public boolean start(ClientHandler h) {
    this.handler = h;
    h.setAutoRead(true);
    h.send(new FrontendMessage.StartupMessage(PgWire.PROTOCOL_3_0, options.startupParameters()));
    return false;
  }

  private ClientHandler handler() {
    ClientHandler h = handler;
    if (h == null) {
      throw new IllegalStateException("not started");
    }
    return h;
  }

  @Override
  public boolean onMessage(BackendMessage m) {
    ClientHandler h = handler();
    switch (m) {
      case AuthenticationOk ok -> authenticated = true;
      case AuthenticationCleartextPassword p ->
          h.send(new FrontendMessage.PasswordMessage(requirePassword("password")));
      case AuthenticationMd5Password md5 ->
          h.send(
              new FrontendMessage.PasswordMessage(
                  md5Password(options.user(), requirePassword("md5"), md5.salt())));
      case AuthenticationSasl sasl ->
          throw unsupported("SASL (" + String.join(", ", sasl.mechanisms()) + ")");
      case AuthenticationOther other -> throw unsupported(other.methodName());
      case BackendKeyData k -> connection.setBackendKey(k.processId(), k.secretKey());
      case NegotiateProtocolVersion v -> {
        // We ask for 3.0 with no protocol options; a server that answers this is confused.
        throw PgWireException.protocol(
            h.context() + ": server sent NegotiateProtocolVersion " + v + " for protocol 3.0");
      }
      case ErrorResponse e -> {
        // FATAL during startup: bad password, unknown database, too many connections... The
        // connection fails with it (the server closes it anyway).
        throw new PgServerException(h.context() + ": connection startup", e.notice());
      }
      case ReadyForQuery r -> {
        if (!authenticated) {
          throw PgWireException.protocol(
              h.context() + ": server sent ReadyForQuery before AuthenticationOk");
        }
        sink.success(connection);
        return true;
      }
      default ->
          throw PgWireException.protocol(
              h.context() + ": unexpected message during connection startup: " + m);
    }
    return false;
  }

  private String requirePassword(String method) {
    String pw = options.password();
    if (pw == null) {
      throw new PgWireException(
          PgWireException.Kind.AUTHENTICATION,
          handler().context()
              + ": server requested "
              + method
              + " authentication for user \""
              + options.user()
              + "\" but no password was given");
    }
    return pw;
  }

  private PgWireException unsupported(String method) {
    return new PgWireException(
        PgWireException.Kind.AUTHENTICATION,
        handler().context()
            + ": server requested "
            + method
            + " authentication for user \""
            + options.user()
            + "\", which this client does not implement (supported: trust, password, md5)");
  }

  @Override
  public void fail(PgWireException error) {
    sink.error(error);
  }

  /** {@code "md5" + md5hex(md5hex(password + user) + salt)}, PostgreSQL's MD5 response. */
  static String md5Password(String user, String password, byte[] salt) {
    try {
      MessageDigest md = MessageDigest.getInstance("MD5");
      HexFormat hex = HexFormat.of();
      md.update(password.getBytes(StandardCharsets.UTF_8));
      md.update(user.getBytes(StandardCharsets.UTF_8));
      String inner = hex.formatHex(md.digest());
      md.update(inner.getBytes(StandardCharsets.US_ASCII));
      md.update(salt);
      return "md5" + hex.formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no MD5", e);
    }
  }
}
