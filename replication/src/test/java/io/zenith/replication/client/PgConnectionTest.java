package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.PgWireException.Kind;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.testing.NettyLeakCheck;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.core.publisher.Mono;

/** {@link PgConnection} against a real PostgreSQL 15 and against servers that misbehave. */
@ExtendWith(NettyLeakCheck.class)
class PgConnectionTest {
  private static final Duration T = Duration.ofSeconds(30);
  private static PgCluster cluster;

  @BeforeAll
  static void startCluster() throws IOException {
    cluster = PgCluster.initdb();
    cluster.configure(Map.of("fsync", "off"));
    cluster.start();
    cluster.sql(
        """
        set password_encryption = 'md5';
        create role md5user login password 'md5secret';
        set password_encryption = 'scram-sha-256';
        create role pwuser login password 'pwsecret';
        create role scramuser login password 'scramsecret';
        """);
    Path hba = cluster.dataDir().resolve("pg_hba.conf");
    String rules =
        """
        host all md5user 127.0.0.1/32 md5
        host all pwuser 127.0.0.1/32 password
        host all scramuser 127.0.0.1/32 scram-sha-256
        """;
    Files.writeString(hba, rules + Files.readString(hba));
    cluster.sql("select pg_reload_conf()");
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static PgConnectOptions.Builder as(String user) {
    return PgConnectOptions.builder().port(cluster.port()).user(user).database("postgres");
  }

  private static PgConnection connect(PgConnectOptions.Builder b) {
    return PgConnection.connect(b.build()).block(T);
  }

  @Test
  void simpleQueriesReturnColumnsRowsNullsAndTags() {
    PgConnection c = connect(as("postgres").applicationName("zenith_q"));
    assertThat(c.serverParameters())
        .containsEntry("application_name", "zenith_q")
        .containsEntry("client_encoding", "UTF8")
        .containsKey("server_version");
    assertThat(c.backendProcessId()).isPositive();
    List<QueryResult> all =
        c.simpleQueryAll(
                "create temp table t (a int, b text); insert into t values (1, 'ä'), (2, null);"
                    + " select a, b from t order by a")
            .block(T);
    assertThat(all)
        .extracting(QueryResult::commandTag)
        .containsExactly("CREATE TABLE", "INSERT 0 2", "SELECT 2");
    QueryResult select = all.get(2);
    assertThat(select.columns()).containsExactly("a", "b");
    assertThat(select.rows()).extracting(r -> r.get("a")).containsExactly("1", "2");
    assertThat(select.rows().get(0).get("b")).isEqualTo("ä");
    assertThat(select.rows().get(1).get(1)).isNull();
    assertThat(c.simpleQuery("").block(T).commandTag()).isEmpty();
    assertThat(c.simpleQuery("copy (select 1 union all select 2) to stdout").block(T).copyData())
        .asString(StandardCharsets.UTF_8)
        .isEqualTo("1\n2\n");
    // ParameterStatus updates arrive with the result
    c.simpleQuery("set application_name = 'renamed'").block(T);
    assertThat(c.serverParameters()).containsEntry("application_name", "renamed");
    c.close().block(T);
    assertThat(c.isClosed()).isTrue();
  }

  @Test
  void serverErrorsCarryTheirFieldsAndTheConnectionGoesOn() {
    PgConnection c = connect(as("postgres"));
    c.simpleQuery("create temp table u (id int primary key)").block(T);
    c.simpleQuery("insert into u values (1)").block(T);
    assertThatThrownBy(() -> c.simpleQuery("insert into u values (1)").block(T))
        .isInstanceOfSatisfying(
            PgServerException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(Kind.SERVER);
              assertThat(e.sqlState()).isEqualTo("23505");
              assertThat(e.severity()).isEqualTo("ERROR");
              assertThat(e.serverMessage()).contains("duplicate key value");
              assertThat(e.detail()).isEqualTo("Key (id)=(1) already exists.");
              assertThat(e.notice().table()).isEqualTo("u");
              assertThat(e.notice().constraint()).isEqualTo("u_pkey");
              assertThat(e.getMessage()).startsWith(c.id() + " 127.0.0.1:");
            });
    assertThatThrownBy(() -> c.simpleQuery("selec 1").block(T))
        .isInstanceOfSatisfying(
            PgServerException.class,
            e -> {
              assertThat(e.sqlState()).isEqualTo(SqlState.SYNTAX_ERROR);
              assertThat(e.notice().position()).isEqualTo("1");
            });
    // notices do not disturb the query
    assertThat(
            c.simpleQuery("do $$ begin raise notice 'hello'; end $$; select 42")
                .block(T)
                .singleValue())
        .isEqualTo("42");
    // requests made together run in order
    List<String> values =
        Mono.zip(
                c.simpleQuery("select 1"),
                c.simpleQuery("select pg_sleep(0.05), 2").map(r -> r.rows().get(0).get(1)),
                c.simpleQuery("select 3"))
            .map(t -> List.of(t.getT1().singleValue(), t.getT2(), t.getT3().singleValue()))
            .block(T);
    assertThat(values).containsExactly("1", "2", "3");
    c.close().block(T);
  }

  @Test
  void md5AndCleartextPasswordsAreSupported() {
    PgConnection md5 = connect(as("md5user").password("md5secret"));
    assertThat(md5.simpleQuery("select current_user").block(T).singleValue()).isEqualTo("md5user");
    md5.close().block(T);
    PgConnection pw = connect(as("pwuser").password("pwsecret"));
    assertThat(pw.simpleQuery("select current_user").block(T).singleValue()).isEqualTo("pwuser");
    pw.close().block(T);
  }

  @Test
  void authenticationFailuresAreClear() {
    assertThatThrownBy(() -> connect(as("md5user").password("wrong")))
        .isInstanceOfSatisfying(
            PgServerException.class,
            e -> {
              assertThat(e.sqlState()).isEqualTo(SqlState.INVALID_PASSWORD);
              assertThat(e.severity()).isEqualTo("FATAL");
              assertThat(e.serverMessage())
                  .isEqualTo("password authentication failed for user \"md5user\"");
            });
    assertThatThrownBy(() -> connect(as("pwuser")))
        .isInstanceOfSatisfying(
            PgWireException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(Kind.AUTHENTICATION);
              assertThat(e.getMessage())
                  .endsWith(
                      "server requested password authentication for user \"pwuser\" but no"
                          + " password was given");
            });
    assertThatThrownBy(() -> connect(as("scramuser").password("scramsecret")))
        .isInstanceOfSatisfying(
            PgWireException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(Kind.AUTHENTICATION);
              assertThat(e.getMessage())
                  .contains("server requested SASL (SCRAM-SHA-256")
                  .contains(
                      "which this client does not implement (supported: trust, password, md5)");
            });
    assertThatThrownBy(() -> connect(as("postgres").database("nosuchdb")))
        .isInstanceOfSatisfying(
            PgServerException.class, e -> assertThat(e.sqlState()).isEqualTo("3D000"));
  }

  @Test
  void aTerminatedBackendFailsTheNextRequestWithTheServersReason() {
    PgConnection c = connect(as("postgres"));
    int pid = c.backendProcessId();
    cluster.sql("select pg_terminate_backend(" + pid + ")");
    // an idle connection reads: it sees the FATAL and the close by itself
    c.onClose().block(T);
    assertThat(c.isClosed()).isTrue();
    assertThatThrownBy(() -> c.simpleQuery("select 1").block(T))
        .isInstanceOfSatisfying(
            PgWireException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(Kind.CONNECTION_LOST);
              assertThat(e.getMessage())
                  .contains("connection closed by the server")
                  .contains("57P01")
                  .contains("terminating connection due to administrator command");
            });
    assertThat(c.isClosed()).isTrue();
  }

  @Test
  void aRefusedConnectionIsAConnectError() throws IOException {
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    assertThatThrownBy(
            () ->
                PgConnection.connect(PgConnectOptions.builder().port(port).user("x").build())
                    .block(T))
        .isInstanceOfSatisfying(
            PgWireException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(Kind.CONNECT);
              assertThat(e.getMessage())
                  .endsWith("cannot connect to 127.0.0.1:" + port + ": connection refused");
            });
  }

  @Test
  void aServerThatNeverAnswersTimesOut() throws Exception {
    try (ServerSocket silent = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
      Thread acceptor = Thread.ofVirtual().start(() -> acceptAndHold(silent));
      PgConnectOptions o =
          PgConnectOptions.builder()
              .port(silent.getLocalPort())
              .user("x")
              .connectTimeout(Duration.ofMillis(500))
              .build();
      assertThatThrownBy(() -> PgConnection.connect(o).block(T))
          .isInstanceOfSatisfying(
              PgWireException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(Kind.TIMEOUT);
                assertThat(e.getMessage())
                    .endsWith("connection startup did not finish within 500 ms");
              });
      acceptor.interrupt();
    }
  }

  @Test
  void aServerThatIsNotPostgresIsAProtocolError() throws Exception {
    try (ServerSocket http = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
      Thread server =
          Thread.ofVirtual()
              .start(
                  () -> {
                    try (Socket s = http.accept()) {
                      InputStream in = s.getInputStream();
                      in.readNBytes(8);
                      OutputStream out = s.getOutputStream();
                      out.write(
                          "HTTP/1.1 400 Bad Request\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                      out.flush();
                      in.read();
                    } catch (IOException e) {
                      // client went away
                    }
                  });
      assertThatThrownBy(
              () ->
                  PgConnection.connect(
                          PgConnectOptions.builder().port(http.getLocalPort()).user("x").build())
                      .block(T))
          .isInstanceOfSatisfying(
              PgWireException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(Kind.PROTOCOL);
                assertThat(e.getMessage())
                    .contains("message type 'H' of 1414811695 bytes exceeds the limit");
              });
      server.join(5000);
    }
  }

  private static void acceptAndHold(ServerSocket server) {
    try (Socket s = server.accept()) {
      s.getInputStream().read(new byte[1024]);
      s.getInputStream().read();
    } catch (IOException e) {
      // closed by the test or the client
    }
  }
}
