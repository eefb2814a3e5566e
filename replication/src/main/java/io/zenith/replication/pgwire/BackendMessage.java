package io.zenith.replication.pgwire;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * Messages a PostgreSQL server sends (the "B" messages of protocol.sgml) that this module decodes
 * or encodes. Text is UTF-8. Records are immutable; the {@code byte[]} they hold are owned by the
 * record (decoders allocate them; never modify them).
 */
public sealed interface BackendMessage
    permits BackendMessage.AuthenticationOk,
        BackendMessage.AuthenticationCleartextPassword,
        BackendMessage.AuthenticationMd5Password,
        BackendMessage.AuthenticationSasl,
        BackendMessage.AuthenticationSaslContinue,
        BackendMessage.AuthenticationSaslFinal,
        BackendMessage.AuthenticationOther,
        BackendMessage.ParameterStatus,
        BackendMessage.BackendKeyData,
        BackendMessage.ReadyForQuery,
        BackendMessage.RowDescription,
        BackendMessage.DataRow,
        BackendMessage.CommandComplete,
        BackendMessage.EmptyQueryResponse,
        BackendMessage.ErrorResponse,
        BackendMessage.NoticeResponse,
        BackendMessage.CopyResponse,
        BackendMessage.NotificationResponse,
        BackendMessage.NegotiateProtocolVersion,
        BackendMessage.EncryptionRefused,
        CopyData,
        CopyDone {

  /** {@code R} code 0: authentication succeeded. */
  record AuthenticationOk() implements BackendMessage {
    public static final AuthenticationOk INSTANCE = new AuthenticationOk();
  }

  /** {@code R} code 3: send the password in clear text. */
  record AuthenticationCleartextPassword() implements BackendMessage {
    public static final AuthenticationCleartextPassword INSTANCE =
        new AuthenticationCleartextPassword();
  }

  /** {@code R} code 5: send the MD5-hashed password with this 4-byte salt. */
  record AuthenticationMd5Password(byte[] salt) implements BackendMessage {
    public AuthenticationMd5Password {
      if (salt.length != 4) {
        throw new IllegalArgumentException("MD5 salt must be 4 bytes, got " + salt.length);
      }
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof AuthenticationMd5Password m && Arrays.equals(salt, m.salt);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(salt);
    }

    @Override
    public String toString() {
      return "AuthenticationMd5Password[salt=" + HexFormatHolder.HEX.formatHex(salt) + "]";
    }
  }

  /** {@code R} code 10: SASL authentication with one of these mechanisms (SCRAM-SHA-256...). */
  record AuthenticationSasl(List<String> mechanisms) implements BackendMessage {
    public AuthenticationSasl {
      mechanisms = List.copyOf(mechanisms);
    }
  }

  /** {@code R} code 11: a SASL challenge. */
  record AuthenticationSaslContinue(byte[] data) implements BackendMessage {
    @Override
    public boolean equals(Object o) {
      return o instanceof AuthenticationSaslContinue m && Arrays.equals(data, m.data);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      return "AuthenticationSaslContinue[" + data.length + " bytes]";
    }
  }

  /** {@code R} code 12: SASL outcome data. */
  record AuthenticationSaslFinal(byte[] data) implements BackendMessage {
    @Override
    public boolean equals(Object o) {
      return o instanceof AuthenticationSaslFinal m && Arrays.equals(data, m.data);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      return "AuthenticationSaslFinal[" + data.length + " bytes]";
    }
  }

  /**
   * {@code R} with a code this module does not implement: 2 KerberosV5, 6 SCMCredential, 7 GSS, 8
   * GSSContinue, 9 SSPI (or a future one).
   */
  record AuthenticationOther(int code, byte[] data) implements BackendMessage {
    /** PostgreSQL's name of the method, for error messages. */
    public String methodName() {
      return switch (code) {
        case 2 -> "KerberosV5";
        case 6 -> "SCMCredential";
        case 7 -> "GSSAPI";
        case 8 -> "GSSAPI (continue)";
        case 9 -> "SSPI";
        default -> "unknown method " + code;
      };
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof AuthenticationOther m && code == m.code && Arrays.equals(data, m.data);
    }

    @Override
    public int hashCode() {
      return 31 * code + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      return "AuthenticationOther[" + methodName() + "]";
    }
  }

  /** {@code S}: a run-time parameter's value (server_version, client_encoding, ...). */
  record ParameterStatus(String name, String value) implements BackendMessage {
    public ParameterStatus {
      Objects.requireNonNull(name);
      Objects.requireNonNull(value);
    }
  }

  /** {@code K}: the backend's process id and the secret key for CancelRequest. */
  record BackendKeyData(int processId, int secretKey) implements BackendMessage {}

  /** {@code Z}: ready for a new query; status I (idle), T (in a transaction) or E (failed). */
  record ReadyForQuery(char transactionStatus) implements BackendMessage {
    public static final ReadyForQuery IDLE = new ReadyForQuery('I');

    public ReadyForQuery {
      if (transactionStatus != 'I' && transactionStatus != 'T' && transactionStatus != 'E') {
        throw new IllegalArgumentException(
            "transaction status must be I, T or E, got '" + transactionStatus + "'");
      }
    }
  }

  /** One column of a {@link RowDescription}; format 0 is text, 1 binary. */
  record Field(
      String name,
      int tableOid,
      short columnAttribute,
      int typeOid,
      short typeSize,
      int typeModifier,
      short format) {

    /** Type OID of {@code text}. */
    public static final int TEXT_OID = 25;

    /** A text column of type {@code text} not taken from a table. */
    public static Field text(String name) {
      return new Field(name, 0, (short) 0, TEXT_OID, (short) -1, -1, (short) 0);
    }
  }

  /** {@code T}: the columns of the rows that follow. */
  record RowDescription(List<Field> fields) implements BackendMessage {
    public RowDescription {
      fields = List.copyOf(fields);
    }
  }

  /**
   * {@code D}: one row; a {@code null} element is SQL NULL. The list is unmodifiable and may hold
   * nulls.
   */
  record DataRow(List<byte[]> values) implements BackendMessage {
    public DataRow {
      values = Collections.unmodifiableList(new ArrayList<>(values));
    }

    @Override
    public boolean equals(Object o) {
      if (!(o instanceof DataRow r) || r.values.size() != values.size()) {
        return false;
      }
      for (int i = 0; i < values.size(); i++) {
        if (!Arrays.equals(values.get(i), r.values.get(i))) {
          return false;
        }
      }
      return true;
    }

    @Override
    public int hashCode() {
      int h = 1;
      for (byte[] v : values) {
        h = 31 * h + Arrays.hashCode(v);
      }
      return h;
    }

    @Override
    public String toString() {
      return "DataRow[" + values.size() + " values]";
    }
  }

  /** {@code C}: a command finished; the tag is e.g. {@code SELECT 3}, {@code COPY 0}. */
  record CommandComplete(String tag) implements BackendMessage {
    public CommandComplete {
      Objects.requireNonNull(tag);
    }
  }

  /** {@code I}: the query string was empty. */
  record EmptyQueryResponse() implements BackendMessage {
    public static final EmptyQueryResponse INSTANCE = new EmptyQueryResponse();
  }

  /** {@code E}: an error; the command (and for FATAL, the session) is over. */
  record ErrorResponse(PgNotice notice) implements BackendMessage {
    public ErrorResponse {
      Objects.requireNonNull(notice);
    }
  }

  /** {@code N}: a notice or warning; may arrive at any time. */
  record NoticeResponse(PgNotice notice) implements BackendMessage {
    public NoticeResponse {
      Objects.requireNonNull(notice);
    }
  }

  /**
   * The three copy responses share their layout: an overall format (0 text, 1 binary) and one
   * format per column.
   */
  sealed interface CopyResponse extends BackendMessage
      permits CopyInResponse, CopyOutResponse, CopyBothResponse {
    int format();

    List<Integer> columnFormats();

    /** Message type byte: {@code G}, {@code H} or {@code W}. */
    char type();
  }

  /** {@code G}: the server is ready to receive COPY data. */
  record CopyInResponse(int format, List<Integer> columnFormats) implements CopyResponse {
    public CopyInResponse {
      columnFormats = List.copyOf(columnFormats);
    }

    @Override
    public char type() {
      return 'G';
    }
  }

  /** {@code H}: COPY data follows, ended by CopyDone. */
  record CopyOutResponse(int format, List<Integer> columnFormats) implements CopyResponse {
    public CopyOutResponse {
      columnFormats = List.copyOf(columnFormats);
    }

    @Override
    public char type() {
      return 'H';
    }
  }

  /** {@code W}: copy in both directions (streaming replication). */
  record CopyBothResponse(int format, List<Integer> columnFormats) implements CopyResponse {
    public CopyBothResponse {
      columnFormats = List.copyOf(columnFormats);
    }

    @Override
    public char type() {
      return 'W';
    }
  }

  /** {@code A}: a NOTIFY from another session. */
  record NotificationResponse(int processId, String channel, String payload)
      implements BackendMessage {}

  /** {@code v}: the server supports only an older minor version and not these options. */
  record NegotiateProtocolVersion(int newestMinorVersion, List<String> unrecognizedOptions)
      implements BackendMessage {
    public NegotiateProtocolVersion {
      unrecognizedOptions = List.copyOf(unrecognizedOptions);
    }
  }

  /**
   * The single byte {@code N} a server answers an SSLRequest or GSSENCRequest with when it will not
   * encrypt; not a typed message (no length word). Encoded only: our client never asks.
   */
  record EncryptionRefused() implements BackendMessage {
    public static final EncryptionRefused INSTANCE = new EncryptionRefused();
  }
}
