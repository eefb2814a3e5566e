package io.zenith.wal.remote;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.zenith.wal.testing.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3AsyncClient;

/**
 * The contract on S3: a real s3proxy on loopback, one per class, each test under a prefix of its
 * own. Listings run with 100 keys a page so that a few hundred keys take several pages.
 */
class S3RemoteStorageTest extends RemoteStorageContract {
  static S3Proxy proxy;

  @BeforeAll
  static void startProxy() {
    proxy = S3Proxy.start();
  }

  @AfterAll
  static void stopProxy() {
    if (proxy != null) {
      proxy.close();
    }
  }

  @Test
  void aLargeFileGoesUpInPartsAndASmallOneInOneRequest() throws java.io.IOException {
    java.nio.file.Path big = write("big", LARGE, 9);
    java.nio.file.Path small = write("small", 1 << 20, 10);
    storage.upload(big, RemoteKey.of("parts/big")).block(WAIT);
    storage.upload(small, RemoteKey.of("parts/small")).block(WAIT);
    // S3 names a multipart object's ETag "<md5 of the parts' md5s>-<number of parts>"
    try (S3AsyncClient raw =
        S3AsyncClient.builder()
            .endpointOverride(proxy.endpoint())
            .region(Region.US_EAST_1)
            .forcePathStyle(true)
            .credentialsProvider(
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(S3Proxy.ACCESS_KEY, S3Proxy.SECRET_KEY)))
            .build()) {
      String prefix = "contract/aLargeFileGoesUpInPartsAndASmallOneInOneRequest/parts/";
      assertThat(etag(raw, prefix + "big")).endsWith("-5\"");
      assertThat(etag(raw, prefix + "small")).doesNotContain("-");
    }
  }

  /**
   * Closing right after requests logs nothing: the pooled connections' close listeners run on the
   * event loops, which must still take them (a CLI printed Netty's RejectedExecutionException
   * warning to stderr after its one-line error).
   */
  @Test
  void closingAfterRequestsLogsNoWarning() throws InterruptedException {
    Logger netty = (Logger) LoggerFactory.getLogger("io.netty");
    ListAppender<ILoggingEvent> captured = new ListAppender<>();
    captured.start();
    netty.addAppender(captured);
    try {
      for (int i = 0; i < 20; i++) {
        try (RemoteStorage s = open("closingAfterRequestsLogsNoWarning")) {
          s.put(RemoteKey.of("k" + i), new byte[] {1, 2, 3}).block(WAIT);
          assertThat(s.get(RemoteKey.of("k" + i)).block(WAIT)).containsExactly(1, 2, 3);
        }
      }
      Thread.sleep(1_500); // the loops' shutdown (at most 1 s) is over
    } finally {
      netty.detachAppender(captured);
    }
    assertThat(captured.list)
        .as("Netty's warnings")
        .filteredOn(e -> e.getLevel().isGreaterOrEqual(Level.WARN))
        .extracting(ILoggingEvent::getFormattedMessage)
        .isEmpty();
  }

  private static String etag(S3AsyncClient raw, String name) {
    return raw.headObject(r -> r.bucket(S3Proxy.BUCKET).key(name)).join().eTag();
  }

  @Override
  RemoteStorage open(String testName) {
    return RemoteStorage.open(
        multipartAt16MiB(proxy.settings("contract/" + testName)).withPageSize(pageSize()));
  }

  @Override
  int pageSize() {
    return 100;
  }

  /**
   * The multipart settings before ADR 0031 (16 MiB threshold, 8 MiB parts, 4 at a time): the
   * contract's large files (40 MiB, 20 MiB) then take the multipart path, which the default
   * threshold (64 MiB) would only take for larger, slower files.
   */
  static S3Settings multipartAt16MiB(S3Settings s) {
    return s.withMultipart(16L << 20, 8L << 20, 4);
  }
}
