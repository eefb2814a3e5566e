package io.zenith.it.support;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The workload itself on a vanilla PostgreSQL: the invariants the safekeeper tests rely on. */
class BankWorkloadTest {
  @Test
  void transfersKeepTheTotalAndEveryAcknowledgedTransferIsThere() throws Exception {
    try (PgCluster c = PgCluster.initdb()) {
      c.start();
      var factory = BankWorkload.factory("127.0.0.1", c.port(), "postgres");
      try (BankWorkload w = BankWorkload.create(factory, 100, 1000).start(10)) {
        Thread.sleep(3000);
        w.stop();
        assertThat(w.errors()).isEmpty();
        assertThat(w.acknowledged()).hasSizeGreaterThan(100);
        assertThat(w.stalls(Duration.ofSeconds(1))).isEmpty();
        BankWorkload.Snapshot s = BankWorkload.read(factory);
        assertThat(s.total()).isEqualTo(w.expectedTotal());
        assertThat(s.transfers()).containsAll(w.acknowledged());
        assertThat(s.transfers()).hasSize(w.acknowledged().size());
      }
    }
  }
}
