package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/**
 * {@link PgConnection#copyOut} against the pageserver's {@code basebackup}: the same files psql
 * receives, no CopyData message above the 256 KiB the pageserver promises (a WAL segment is 16
 * MiB), errors with their SQLSTATE on a connection that stays usable, and a slow consumer served
 * within the read-ahead.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BasebackupCopyOutTest {
  private static final Duration T = Duration.ofMinutes(2);
  @TempDir static Path data;
  private static final TenantId TENANT = TenantId.generate();
  private static final TimelineId MAIN = TimelineId.generate();
  private Pageserver ps;
  private Lsn lsn;

  @BeforeAll
  void importAndStart() throws IOException {
    try (PgCluster initdb = PgCluster.initdb("--data-checksums");
        LayerStore store = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      store.createTenant(TENANT);
      lsn = DatadirImport.run(store, TENANT, MAIN, initdb.dataDir()).lsn();
    }
    PageserverConfig cfg =
        new PageserverConfig(
            "127.0.0.1:0", "127.0.0.1:0", "test", "8MiB", "10m", "5s", "64MiB", 2, "10s", true);
    ps = Pageserver.start(data, cfg.validate());
  }

  @AfterAll
  void stop() {
    if (ps != null) {
      ps.close();
    }
  }

  private PgConnection connect() {
    return PgConnection.connect(
            PgConnectOptions.builder()
                .port(ps.pgPort())
                .user("postgres")
                .database("postgres")
                .build())
        .block(T);
  }

  private String command() {
    return "basebackup " + TENANT + " " + MAIN + " " + lsn;
  }

  @Test
  void theSameBytesAsPsqlInMessagesOfAtMost256KiB() throws Exception {
    Path viaPsql = data.resolve("psql.tar");
    Process p =
        new ProcessBuilder(
                PgDistribution.detect().bin("psql").toString(),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(ps.pgPort()),
                "-U",
                "postgres",
                "-c",
                command())
            .redirectOutput(viaPsql.toFile())
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start();
    assertThat(p.waitFor()).isZero();
    byte[] expected = Files.readAllBytes(viaPsql);

    PgConnection c = connect();
    try {
      java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
      AtomicInteger largest = new AtomicInteger();
      c.copyOut(command())
          .doOnNext(
              b -> {
                largest.accumulateAndGet(b.remaining(), Math::max);
                got.write(b.array(), b.arrayOffset() + b.position(), b.remaining());
              })
          .blockLast(T);
      assertThat(got.size()).isEqualTo(expected.length).isGreaterThan(16 << 20);
      assertThat(largest.get()).isLessThanOrEqualTo(256 * 1024);
      // every file the same; pg_control and the WAL segment carry the time of the request, and
      // tar entries its mtime
      Map<String, String> fromPsql = contents(expected);
      Map<String, String> fromCopyOut = contents(got.toByteArray());
      assertThat(fromCopyOut.keySet()).isEqualTo(fromPsql.keySet()).contains("global/pg_control");
      fromPsql.keySet().stream()
          .filter(n -> !n.equals("global/pg_control") && !n.startsWith("pg_wal/"))
          .forEach(n -> assertThat(fromCopyOut.get(n)).as(n).isEqualTo(fromPsql.get(n)));
    } finally {
      c.close().block(T);
    }
  }

  /** Entry name → SHA-256 of its content (directories: "dir"). */
  private static Map<String, String> contents(byte[] tar) throws Exception {
    Map<String, String> out = new java.util.TreeMap<>();
    try (TarArchiveInputStream in = new TarArchiveInputStream(new ByteArrayInputStream(tar))) {
      TarArchiveEntry e;
      while ((e = in.getNextEntry()) != null) {
        out.put(
            e.getName(),
            e.isDirectory()
                ? "dir"
                : HexFormat.of()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(in.readAllBytes())));
      }
    }
    return out;
  }

  @Test
  void errorsCarryTheirSqlStateAndTheConnectionGoesOn() {
    PgConnection c = connect();
    try {
      StepVerifier.create(c.copyOut("basebackup " + TENANT + " " + TimelineId.generate()))
          .expectErrorSatisfies(
              e ->
                  assertThat(e)
                      .isInstanceOfSatisfying(
                          PgServerException.class,
                          s -> assertThat(s.sqlState()).isEqualTo("42704")))
          .verify(T);
      StepVerifier.create(c.copyOut("basebackup " + TENANT + " " + MAIN + " 0/10"))
          .expectErrorSatisfies(
              e ->
                  assertThat(((PgServerException) e).serverMessage())
                      .contains("is before the start of timeline"))
          .verify(T);
      // the same connection then serves a whole basebackup, read slowly: one buffer at a time
      AtomicLong bytes = new AtomicLong();
      Flux<ByteBuffer> slow = c.copyOut(command(), 1).limitRate(1);
      StepVerifier.create(slow.doOnNext(b -> bytes.addAndGet(b.remaining())), 0)
          .thenRequest(2)
          .expectNextCount(2)
          .thenRequest(Long.MAX_VALUE)
          .thenConsumeWhile(b -> true)
          .verifyComplete();
      assertThat(bytes.get()).isGreaterThan(16L << 20);
    } finally {
      c.close().block(T);
    }
  }
}
