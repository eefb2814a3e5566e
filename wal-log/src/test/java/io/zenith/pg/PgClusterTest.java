package io.zenith.pg;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import java.nio.file.Files;
import org.junit.jupiter.api.Test;

class PgClusterTest {

  @Test
  void runsARealPostgres15AsAnUnprivilegedUser() {
    try (PgCluster c = PgCluster.initdb()) {
      c.start();
      assertThat(c.sql("select current_setting('server_version_num')::int / 10000").trim())
          .isEqualTo("15");
      String user = c.sql("select pg_read_file('PG_VERSION')").trim();
      assertThat(user).isEqualTo("15");
      if (PgDistribution.runningAsRoot()) {
        assertThat(c.distribution().osUser()).isPresent();
      }
      c.stop();
      assertThat(Files.isDirectory(c.walDir())).isTrue();
    }
  }
}
