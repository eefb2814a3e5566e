package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LayerFileTest {
  @TempDir Path dir;

  private static final TenantId T = TenantId.generate();
  private static final TimelineId TL = TimelineId.generate();

  record V(Key key, Lsn lsn, Value value) {}

  static List<V> sample() {
    Random r = new Random(3);
    List<V> out = new ArrayList<>();
    for (int k = 0; k < 50; k++) {
      Key key = new Key(0, 1663, 5, 16384, 0, k);
      for (int v = 0; v < 4; v++) {
        Lsn lsn = Lsn.of(0x1000000L + v * 0x100L + k * 8);
        byte[] page = new byte[8192];
        for (int i = 0; i < 400; i++) {
          page[r.nextInt(8192)] = (byte) r.nextInt();
        }
        Value value =
            switch (v) {
              case 0 -> new Value.Image(page);
              case 1 -> new Value.WalRecord(false, lsn.plus(-64), Arrays.copyOf(page, 100 + k));
              case 2 -> new Value.Patch(false, new int[] {k}, new byte[] {1}, new byte[] {1});
              default ->
                  k % 10 == 0
                      ? Value.TOMBSTONE
                      : new Value.WalRecord(k % 2 == 0, lsn.plus(-64), page);
            };
        out.add(new V(key, lsn, value));
      }
    }
    return out;
  }

  private Path write(List<V> versions) throws IOException {
    Path f = dir.resolve("l.layer");
    LayerFile.Header h =
        new LayerFile.Header(
            LayerFile.Kind.DELTA, T, TL, KeyRange.ALL, Lsn.of(0xFFFFFF), Lsn.of(0x2000000), 7);
    LayerFile.Writer.write(
        f,
        h,
        w -> {
          for (V v : versions) {
            w.add(v.key(), v.lsn(), v.value());
          }
        });
    return f;
  }

  @Test
  void anInterruptedReaderDoesNotCloseTheFileForTheOthers() throws Exception {
    List<V> versions = sample();
    Path f = write(versions);
    try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
      LayerFile.IndexEntry e = r.readIndex().get(5);
      // A FileChannel read by an interrupted thread throws and closes the channel for everyone.
      Throwable[] seen = new Throwable[1];
      Thread t =
          new Thread(
              () -> {
                Thread.currentThread().interrupt();
                try {
                  r.readValue(e.offset(), e.length());
                } catch (RuntimeException x) {
                  seen[0] = x;
                }
              });
      t.start();
      t.join();
      assertThat(seen[0]).as("the interrupted reader gets the error").isNotNull();
      assertThat(r.readValue(e.offset(), e.length())).isEqualTo(versions.get(5).value());
    }
  }

  @Test
  void roundTripsEveryVersion() throws IOException {
    List<V> versions = sample();
    Path f = write(versions);
    try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
      assertThat(r.header().tenant()).isEqualTo(T);
      assertThat(r.header().timeline()).isEqualTo(TL);
      assertThat(r.header().layerId()).isEqualTo(7);
      List<LayerFile.IndexEntry> idx = r.readIndex();
      assertThat(idx).hasSameSizeAs(versions);
      for (int i = 0; i < idx.size(); i++) {
        LayerFile.IndexEntry e = idx.get(i);
        assertThat(e.key()).isEqualTo(versions.get(i).key());
        assertThat(e.lsn()).isEqualTo(versions.get(i).lsn());
        assertThat(e.isBase()).isEqualTo(versions.get(i).value().isBase());
        assertThat(r.readValue(e.offset(), e.length())).isEqualTo(versions.get(i).value());
      }
    }
    // Pages compress: the file is much smaller than the raw values.
    assertThat(Files.size(f)).isLessThan(50L * 8192 * 2);
    assertThat(Files.list(dir).map(p -> p.getFileName().toString())).containsExactly("l.layer");
  }

  @Test
  void rejectsVersionsOutOfOrderOrRange() {
    List<V> versions = sample();
    assertThatThrownBy(() -> write(List.of(versions.get(1), versions.get(0))))
        .hasMessageContaining("out of order");
    assertThatThrownBy(() -> write(List.of(new V(Key.MIN, Lsn.of(5), Value.TOMBSTONE))))
        .hasMessageContaining("outside the layer's ranges");
    assertThat(dir.resolve("l.layer.tmp")).doesNotExist();
  }

  @Test
  void aFlippedBlobByteIsACrcErrorNamingTheFile() throws IOException {
    Path f = write(sample());
    LayerFile.IndexEntry e;
    try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
      e = r.readIndex().get(17);
    }
    byte[] b = Files.readAllBytes(f);
    b[(int) e.offset() + 20] ^= 0x04;
    Files.write(f, b);
    try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
      assertThat(r.readIndex()).hasSize(200);
      assertThatThrownBy(() -> r.readValue(e.offset(), e.length()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              x -> {
                assertThat(x.kind()).isEqualTo(LayerStoreException.Kind.CORRUPT_FILE);
                assertThat(x.getMessage()).contains(f.toString()).contains("CRC");
              });
    }
  }

  @Test
  void damagedHeaderFooterOrIndexAreDetected() throws IOException {
    Path f = write(sample());
    byte[] good = Files.readAllBytes(f);
    record Case(String what, int offset, String message) {}
    for (Case c :
        List.of(
            new Case("magic", 0, "bad magic"),
            new Case("header field", 50, "header CRC"),
            new Case("footer", good.length - 10, "footer"),
            new Case("index", good.length - 32 - 5, "index CRC"))) {
      byte[] b = good.clone();
      b[c.offset()] ^= 0x20;
      Files.write(f, b);
      assertThatThrownBy(
              () -> {
                try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
                  r.readIndex();
                }
              })
          .as(c.what())
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              x -> assertThat(x.getMessage()).contains(c.message()).contains(f.toString()));
    }
    Files.write(f, Arrays.copyOf(good, good.length - 100));
    assertThatThrownBy(() -> LayerFile.Reader.open(f)).hasMessageContaining("footer");
  }
}
