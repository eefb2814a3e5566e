package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperApiModel.PageserverPositions;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.it.pageserver.OpenApiContract;
import io.zenith.it.support.RepoTokens;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.auth.Tokens;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.security.KeyPairGenerator;
import java.security.NoSuchAlgorithmException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import reactor.core.Disposable;

/**
 * Issue 14's authentication (ADR 0016) on a repository as {@code zenith init} makes it (auth on),
 * with the real CLI, pageserver, safekeeper and compute: every endpoint the OpenAPI documents list
 * refuses a missing, malformed, foreign, expired, wrong-tenant and wrong-scope token with 401/403
 * and the documented JSON body, and takes the scopes its {@code security} names; the libpq
 * endpoints refuse the same with SQLSTATE 28000; a tenant's token that claims to be the pageserver
 * moves none of a safekeeper's pageserver positions, which the pageserver's own scope does.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliAuthTest {
  private ZenithRepo z;
  private int computePort;
  private TenantId tenant;
  private TimelineId main;

  @BeforeAll
  void start() throws IOException {
    z = new ZenithRepo(false);
    z.init(1);
    assertThat(z.repo.resolve("auth_private_key.pem")).exists();
    assertThat(Files.getPosixFilePermissions(z.repo.resolve("auth_private_key.pem")))
        .hasToString("[OWNER_READ, OWNER_WRITE]");
    z.ok("start");
    assertThat(Files.getPosixFilePermissions(z.repo.resolve("pageserver/auth_token")))
        .hasToString("[OWNER_READ, OWNER_WRITE]");
    z.ok("pg", "create", "main");
    computePort = z.start("main");
    z.sql(computePort, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    Map<String, String> shown = z.show("main");
    tenant = TenantId.parse(shown.get("tenant"));
    main = TimelineId.parse(shown.get("timeline"));
  }

  @AfterAll
  void stop() {
    if (z != null) {
      z.close();
    }
  }

  /** One operation of an OpenAPI document, on the server that serves it. */
  record Endpoint(String spec, int port, String method, String template, Set<Scope> allowed) {
    @Override
    public String toString() {
      return method + " " + template + " (" + spec + ")";
    }
  }

  Stream<Endpoint> endpoints() {
    List<Endpoint> out = new ArrayList<>();
    for (String spec : List.of("pageserver.yaml", "safekeeper.yaml")) {
      int port = spec.startsWith("pageserver") ? z.httpPort : z.safekeeperHttpPort(1);
      for (OpenApiContract.Operation o : OpenApiContract.repositorySpec(spec).operations()) {
        Set<Scope> allowed = new TreeSet<>();
        o.security()
            .get(0)
            .get("token")
            .forEach(s -> allowed.add(Scope.fromClaim(s.asText()).get()));
        out.add(new Endpoint(spec, port, o.method(), o.template(), Set.copyOf(allowed)));
      }
    }
    assertThat(out).hasSizeGreaterThan(25);
    return out.stream();
  }

  private String path(String template) {
    return template
        .replace("{tenant_id}", tenant.toString())
        .replace("{timeline_id}", main.toString());
  }

  private String token(Scope scope, TenantId forTenant) {
    return z.token(
        switch (scope) {
          case ADMIN -> Claims.admin();
          case TENANT -> Claims.tenant(forTenant);
          case SAFEKEEPER_DATA -> Claims.safekeeperData();
        });
  }

  private static String foreignToken() {
    try {
      return Tokens.issuer(
              KeyPairGenerator.getInstance("Ed25519").generateKeyPair().getPrivate(),
              Clock.systemUTC())
          .issue(Claims.admin(), Duration.ofHours(1));
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  private HttpJson.Response call(Endpoint e, @Nullable String authorization) {
    OpenApiContract spec = OpenApiContract.repositorySpec(e.spec());
    String body = e.method().equals("GET") || e.method().equals("DELETE") ? null : "{}";
    return spec.check(
        e.template(),
        new HttpJson(e.port())
            .withAuthorization(authorization)
            .call(e.method(), path(e.template()), body));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("endpoints")
  @Order(1)
  void everyEndpointRefusesWhatItsSecurityDoesNotAllow(Endpoint e) {
    // 401: no token, not a bearer token, not a JWT, another key's, an expired one
    Map<String, String> unauthorized = new java.util.LinkedHashMap<>();
    unauthorized.put("missing", null);
    unauthorized.put("basic", "Basic YWRtaW46YWRtaW4=");
    unauthorized.put("garbage", "Bearer not.a.jwt");
    unauthorized.put("foreign key", "Bearer " + foreignToken());
    unauthorized.put(
        "expired", "Bearer " + RepoTokens.issue(z.repo, Claims.admin(), Duration.ofMinutes(-1)));
    for (Map.Entry<String, String> c : unauthorized.entrySet()) {
      HttpJson.Response r = call(e, c.getValue());
      assertThat(r.status()).as("%s: %s token", e, c.getKey()).isEqualTo(401);
      assertThat(r.error()).as("%s: %s token", e, c.getKey()).isNotBlank();
      if (c.getValue() != null) {
        assertThat(r.body()).doesNotContain(c.getValue().substring(7));
      }
    }
    assertThat(call(e, null).error()).isEqualTo("a token is required");
    // 403: another tenant's token, and every scope the operation does not list
    HttpJson.Response wrongTenant = call(e, "Bearer " + token(Scope.TENANT, TenantId.generate()));
    assertThat(wrongTenant.status()).as("%s: another tenant's token", e).isEqualTo(403);
    for (Scope s : Scope.values()) {
      if (!e.allowed().contains(s)) {
        HttpJson.Response r = call(e, "Bearer " + token(s, tenant));
        assertThat(r.status()).as("%s: scope %s", e, s.claim()).isEqualTo(403);
        assertThat(r.error()).as("%s: scope %s", e, s.claim()).isNotBlank();
      }
    }
    // What it lists gets past authentication (reads only: writes here would change the repository)
    if (e.method().equals("GET")) {
      for (Scope s : e.allowed()) {
        assertThat(call(e, "Bearer " + token(s, tenant)).status())
            .as("%s: scope %s", e, s.claim())
            .isNotIn(401, 403);
      }
    }
  }

  private PgConnectOptions.Builder libpq(int port, @Nullable String password) {
    return PgConnectOptions.builder()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .database("postgres")
        .password(password)
        .connectTimeout(Duration.ofSeconds(10));
  }

  /** The SQLSTATE of {@code sql} on a pageserver session authenticated with {@code password}. */
  private String pageserverSqlState(@Nullable String password, String sql) {
    PgConnection c;
    try {
      c = PgConnection.connect(libpq(z.pgPort, password).build()).block(Duration.ofSeconds(30));
    } catch (RuntimeException refused) {
      return sqlState(refused);
    }
    try {
      c.copyOut(sql).blockLast(Duration.ofSeconds(60));
      return "00000";
    } catch (RuntimeException refused) {
      return sqlState(refused);
    } finally {
      c.close().block(Duration.ofSeconds(10));
    }
  }

  private static String sqlState(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof PgServerException p) {
        return p.sqlState() + " " + p.serverMessage();
      }
    }
    throw new AssertionError("not a server error", t);
  }

  @Test
  @Order(2)
  void thePageserversLibpqCommandsNeedAToken() {
    for (String sql :
        List.of(
            "basebackup " + tenant + " " + main + " --slim", "pagestream " + tenant + " " + main)) {
      assertThat(pageserverSqlState("", sql)).isEqualTo("28000 a token is required");
      assertThat(pageserverSqlState("garbage", sql)).isEqualTo("28000 the token is not a JWT");
      assertThat(pageserverSqlState(foreignToken(), sql))
          .isEqualTo("28000 the token's signature does not match this key");
      assertThat(
              pageserverSqlState(
                  RepoTokens.issue(z.repo, Claims.admin(), Duration.ofMinutes(-1)), sql))
          .startsWith("28000 the token expired at ");
      assertThat(pageserverSqlState(token(Scope.TENANT, TenantId.generate()), sql))
          .isEqualTo("28000 the token is for another tenant than " + tenant);
      assertThat(pageserverSqlState(token(Scope.SAFEKEEPER_DATA, tenant), sql))
          .isEqualTo("28000 scope 'safekeeperdata' does not allow this");
    }
    // The tenant's own token and an admin token read its data.
    String slim = "basebackup " + tenant + " " + main + " --slim";
    assertThat(pageserverSqlState(token(Scope.TENANT, tenant), slim)).isEqualTo("00000");
    assertThat(pageserverSqlState(z.adminToken(), slim)).isEqualTo("00000");
  }

  private PgConnectOptions.Builder safekeeperStream(
      @Nullable String password, String applicationName, String extraOptions) {
    return libpq(z.safekeeperHttpPort(1) + 1, password)
        .applicationName(applicationName)
        .replication(true)
        .parameter("options", WalService.startupOptions(tenant, main) + extraOptions);
  }

  private String safekeeperSqlState(@Nullable String password, String extraOptions) {
    try {
      ReplicationClient c =
          ReplicationClient.connect(safekeeperStream(password, "auth-test", extraOptions).build())
              .block(Duration.ofSeconds(30));
      try {
        c.identifySystem().block(Duration.ofSeconds(30));
        return "00000";
      } finally {
        c.close().block(Duration.ofSeconds(10));
      }
    } catch (RuntimeException refused) {
      return sqlState(refused);
    }
  }

  @Test
  @Order(3)
  void theSafekeepersWalServiceNeedsAToken() {
    assertThat(safekeeperSqlState("", "")).isEqualTo("28000 a token is required");
    assertThat(safekeeperSqlState(foreignToken(), ""))
        .isEqualTo("28000 the token's signature does not match this key");
    assertThat(safekeeperSqlState(token(Scope.TENANT, TenantId.generate()), ""))
        .isEqualTo("28000 the token is for another tenant than " + tenant);
    // A tenant's own token streams its WAL (pg_receivewal, a standby), but is no peer.
    assertThat(safekeeperSqlState(token(Scope.TENANT, tenant), "")).isEqualTo("00000");
    String peer = " -c " + WalService.PEER + "=2 -c " + WalService.UP_TO + "=0/1000000";
    assertThat(safekeeperSqlState(token(Scope.TENANT, tenant), peer))
        .isEqualTo("28000 scope 'tenant' does not allow this");
    assertThat(safekeeperSqlState(token(Scope.SAFEKEEPER_DATA, tenant), "")).isEqualTo("00000");
  }

  private PageserverPositions positions() {
    return new SafekeeperClient(
            1,
            new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(1)),
            Duration.ofSeconds(30),
            z::adminToken)
        .timeline(tenant, main)
        .pageserver();
  }

  /**
   * Streams from the safekeeper as "pageserver" and reports {@code at} as every position, for a few
   * seconds; returns the positions the safekeeper holds afterwards.
   */
  private PageserverPositions claimToBeThePageserver(String password, Lsn at)
      throws InterruptedException {
    ReplicationClient c =
        ReplicationClient.connect(
                safekeeperStream(password, WalService.PAGESERVER_APPLICATION, "").build())
            .block(Duration.ofSeconds(30));
    try {
      Disposable stream = c.startReplication(null, at, 0).subscribe(chunk -> {}, err -> {});
      try {
        for (int i = 0; i < 10; i++) {
          c.reportProgress(at, at, at);
          Thread.sleep(300);
        }
      } finally {
        stream.dispose();
      }
    } finally {
      c.close().block(Duration.ofSeconds(10));
    }
    return positions();
  }

  @Test
  @Order(4)
  void aTenantsTokenClaimingToBeThePageserverMovesNothing()
      throws InterruptedException, IOException {
    // The pageserver stopped, the compute commits on: the safekeeper's commit LSN runs ahead of
    // the pageserver's positions, which only pageserver feedback moves.
    z.ok("pageserver", "stop");
    z.sql(computePort, "INSERT INTO t SELECT g FROM generate_series(1, 1000) g");
    Lsn commit =
        Lsn.parse(
            new SafekeeperClient(
                    1,
                    new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(1)),
                    Duration.ofSeconds(30),
                    z::adminToken)
                .timeline(tenant, main)
                .commitLsn());
    PageserverPositions before = positions();
    assertThat(Lsn.parse(before.applyLsn())).isLessThan(commit);

    assertThat(claimToBeThePageserver(token(Scope.TENANT, tenant), commit)).isEqualTo(before);
    assertThat(claimToBeThePageserver(z.adminToken(), commit)).isEqualTo(before);
    // The control: the pageserver's own scope moves them, so the two above could have.
    PageserverPositions after =
        claimToBeThePageserver(token(Scope.SAFEKEEPER_DATA, tenant), commit);
    assertThat(Lsn.parse(after.applyLsn())).isEqualTo(commit);
    // Logged, and no token ever is (every JWT starts with the base64 of '{"').
    assertThat(Files.readString(z.repo.resolve("safekeepers/sk1/safekeeper.log")))
        .contains("its token's scope is not safekeeperdata")
        .doesNotContain("eyJ");
    assertThat(Files.readString(z.repo.resolve("pageserver/pageserver.log")))
        .contains("refused")
        .doesNotContain("eyJ");
  }

  @Test
  @Order(5)
  void withoutAuthEveryoneIsServedAndTheServicesSaySo() throws IOException {
    try (ZenithRepo open = new ZenithRepo(false)) {
      List<String> init = open.initArgs();
      init.addAll(List.of("--no-auth", "--safekeepers", "1"));
      // the pageserver's API on every address: the loudest warning
      init.set(init.indexOf("127.0.0.1:" + open.httpPort), "0.0.0.0:" + open.httpPort);
      open.ok(init.toArray(String[]::new));
      assertThat(open.repo.resolve("auth_private_key.pem")).doesNotExist();
      assertThat(open.fails(1, "auth", "token")).contains("has no key pair");
      open.ok("start");
      HttpJson.Response r = new HttpJson(open.httpPort).get("/v1/tenant");
      assertThat(r.status()).isEqualTo(200);
      String log = Files.readString(open.repo.resolve("pageserver/pageserver.log"));
      assertThat(log)
          .contains(
              "auth is off (auth = false): anyone who can connect may read and change its data")
          .contains("auth is off and it listens on 0.0.0.0")
          .contains("which is not a loopback address");
      assertThat(Files.readString(open.repo.resolve("safekeepers/sk1/safekeeper.log")))
          .contains("auth is off (auth = false)")
          .doesNotContain("not a loopback address");
    }
  }
}
