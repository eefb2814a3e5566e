package io.zenith.wal.remote;

import io.zenith.wal.testing.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

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

  @Override
  RemoteStorage open(String testName) {
    return RemoteStorage.open(proxy.settings("contract/" + testName).withPageSize(pageSize()));
  }

  @Override
  int pageSize() {
    return 100;
  }
}
