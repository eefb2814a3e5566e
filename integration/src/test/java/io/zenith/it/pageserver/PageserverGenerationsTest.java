package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.RemoteGenerations;
import io.zenith.layer.RemoteIndex;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 12's two pageservers attached to one tenant with different generations (ADR 0026), with
 * real PostgreSQL and two pageservers over one remote storage, a real s3proxy on loopback: the
 * first streams a compute's WAL and uploads in generation 1; the control plane issues generation 2
 * and attaches the tenant to a second, empty pageserver over HTTP. The first one, not told, goes on
 * ingesting, flushing and compacting: it writes no index, its remote-consistent LSN stays, and its
 * uploads say it is stale. The second one's index names only objects that are there, whole, and a
 * compute on it sees every row committed before the attach.
 */
class PageserverGenerationsTest {
  private static final Duration T = Duration.ofSeconds(90);

  @TempDir Path data1;
  @TempDir Path data2;

  @Test
  void theStaleGenerationWritesNothingAndTheNewerOnesDataIsIntact() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    try (S3Proxy s3 =
        S3Remote.startDuring(() -> PageserverHarness.importTimeline(data1, tenant, main))) {
      run(tenant, main, S3Remote.config(s3, "generations"));
    }
  }

  private void run(TenantId tenant, TimelineId main, RemoteStorageConfig rc) throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(rc.settings(data1));
        Pageserver ps1 =
            Pageserver.start(
                data1, PageserverHarness.config("1MiB", "60s", 1).withRemoteStorage(rc));
        PgCluster compute = PageserverHarness.compute(ps1, tenant, main, null, true)) {
      PageserverHarness.stream(ps1, tenant, main, compute);
      Timeline t1 = ps1.store().timeline(tenant, main);
      compute.sql("create table t (id int primary key, v text)");
      compute.sql("insert into t select i, repeat('a', 300) from generate_series(1, 20000) i");
      Lsn end1 = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
      PgWal.await(
          T, "the first pageserver to ingest " + end1, () -> !t1.lastRecordLsn().isBefore(end1));
      ps1.checkpoint(tenant, main);
      PgWal.await(
          T,
          "generation 1's upload",
          () -> t1.remoteConsistentLsn().equals(t1.diskConsistentLsn()));

      // The control plane attaches the tenant to a second, empty pageserver.
      int g2 = RemoteGenerations.issue(storage, tenant, T);
      assertThat(g2).as("objects of generation 1, no record yet").isEqualTo(2);
      try (Pageserver ps2 =
          Pageserver.start(
              data2, PageserverHarness.config("1MiB", "60s", 1).withRemoteStorage(rc))) {
        HttpJson http2 = new HttpJson(ps2.httpPort());
        HttpJson.Response attached =
            http2.call("POST", "/v1/tenant/" + tenant + "/attach", "{\"generation\": " + g2 + "}");
        assertThat(attached.status()).as(attached.body()).isEqualTo(200);
        assertThat(attached.json().path("generation").asInt()).isEqualTo(2);
        RemoteKey index2 = RemoteIndex.indexKey(tenant, main, 2);
        PgWal.await(T, "the second pageserver's index", () -> exists(storage, index2));

        // The first one goes on: more WAL, a flush, a compaction. Stale: nothing goes up.
        Lsn remote1 = t1.remoteConsistentLsn();
        byte[] index1 = storage.get(RemoteIndex.indexKey(tenant, main, 1)).block(T);
        compute.sql(
            "insert into t select i, repeat('b', 300) from generate_series(20001, 40000) i");
        compute.sql("delete from t where id % 3 = 0");
        Lsn end2 = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
        PgWal.await(
            T, "the first pageserver to ingest " + end2, () -> !t1.lastRecordLsn().isBefore(end2));
        ps1.checkpoint(tenant, main);
        ps1.compact(tenant, main);
        PgWal.await(
            T,
            "the first pageserver's uploads to say it is stale",
            () -> {
              ApiModel.RemoteUploadInfo u = ps1.timeline(tenant, main, false).remoteUpload();
              return u != null
                  && u.failure() != null
                  && u.failure().startsWith("stale: generation 1");
            });
        assertThat(t1.diskConsistentLsn()).isGreaterThan(remote1);
        assertThat(t1.remoteConsistentLsn()).isEqualTo(remote1);
        assertThat(storage.get(RemoteIndex.indexKey(tenant, main, 1)).block(T)).isEqualTo(index1);

        // The second one's data is intact: every object its index names is there, whole, and a
        // compute on it sees what was committed before the attach.
        RemoteIndex i2 = RemoteIndex.fromBytes(storage.get(index2).block(T), index2.toString());
        Map<String, Long> objects = new HashMap<>();
        for (RemoteObject o :
            storage
                .list(RemoteIndex.timelinePrefix(tenant, main).path() + "/")
                .collectList()
                .block(T)) {
          objects.put(o.key().name(), o.size());
        }
        for (RemoteIndex.Layer l : i2.layers()) {
          assertThat(objects).containsEntry(l.objectName(), l.size());
        }
        JsonNode tenantInfo = http2.call("GET", "/v1/tenant/" + tenant, (String) null).json();
        assertThat(tenantInfo.path("generation").asInt()).isEqualTo(2);
        try (PgCluster check =
            PageserverHarness.compute(ps2, tenant, main, end1.toString(), false)) {
          assertThat(check.sql("select count(*), sum(id) from t").trim())
              .isEqualTo("20000|" + (20000L * 20001 / 2));
        }
      }
    }
  }

  private static boolean exists(RemoteStorage storage, RemoteKey key) {
    try {
      storage.get(key).block(T);
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }
}
