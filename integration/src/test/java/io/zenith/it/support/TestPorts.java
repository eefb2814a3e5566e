package io.zenith.it.support;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Ports for the servers tests start, from below the kernel's ephemeral range (32768–60999 on
 * Debian). A port the kernel handed out as ephemeral ({@code new ServerSocket(0)}) can be taken as
 * the local port of any outbound connection between the check and a server's (re)start: a
 * safekeeper restarted on its port failed to bind that way in CI. A port below the range is never
 * given to an outbound connection, and this JVM hands each out once. Thread-safe.
 */
public final class TestPorts {
  private TestPorts() {}

  private static final Set<Integer> GIVEN = ConcurrentHashMap.newKeySet();

  /** A port nothing listens on now, not given out before in this JVM. */
  public static int free() {
    return freeRange(1);
  }

  /** The first of {@code count} consecutive such ports. */
  public static int freeRange(int count) {
    for (int attempt = 0; attempt < 1000; attempt++) {
      int base = 20000 + ThreadLocalRandom.current().nextInt(12000 - count);
      if (bindable(base, count) && claim(base, count)) {
        return base;
      }
    }
    throw new IllegalStateException("no " + count + " free ports below 32000");
  }

  private static boolean bindable(int base, int count) {
    for (int p = base; p < base + count; p++) {
      try (ServerSocket s = new ServerSocket()) {
        s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), p));
      } catch (IOException e) {
        return false;
      }
    }
    return true;
  }

  private static synchronized boolean claim(int base, int count) {
    for (int p = base; p < base + count; p++) {
      if (GIVEN.contains(p)) {
        return false;
      }
    }
    for (int p = base; p < base + count; p++) {
      GIVEN.add(p);
    }
    return true;
  }
}
