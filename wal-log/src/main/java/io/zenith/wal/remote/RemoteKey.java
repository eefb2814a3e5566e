package io.zenith.wal.remote;

import java.nio.charset.StandardCharsets;

/**
 * The name of an object in remote storage: a relative, '/'-separated path such as {@code
 * tenants/0123…/timelines/4567…/index.json}. The same key names the same object in every backend (a
 * file under the local backend's root, an object under the S3 backend's prefix).
 *
 * <p>Rules, checked on construction so that no backend sees a bad key: not empty, at most 1024
 * bytes of UTF-8 (S3's limit), no leading or trailing '/', no empty segment ("a//b"), no segment
 * that starts with '.' (so no "." or "..", which would escape or alias a local root, and no name of
 * the local backend's temporary files), no backslash and no control characters. Immutable.
 */
public record RemoteKey(String path) implements Comparable<RemoteKey> {

  /** S3's limit on the length of an object's name in UTF-8 bytes. */
  public static final int MAX_BYTES = 1024;

  public RemoteKey {
    String bad = problem(path, false);
    if (bad != null) {
      throw new IllegalArgumentException("bad remote key \"" + path + "\": " + bad);
    }
  }

  /** The key {@code path}; throws IllegalArgumentException naming the rule it breaks. */
  public static RemoteKey of(String path) {
    return new RemoteKey(path);
  }

  /** This key followed by '/' and {@code child} (one or more segments). */
  public RemoteKey resolve(String child) {
    return new RemoteKey(path + "/" + child);
  }

  /** The last segment. */
  public String name() {
    return path.substring(path.lastIndexOf('/') + 1);
  }

  /**
   * Checks a listing prefix: empty (everything), or a key's first characters: whole valid segments
   * and possibly a partial last one, or whole segments followed by '/'.
   *
   * @return the prefix
   * @throws IllegalArgumentException naming the rule it breaks
   */
  public static String checkPrefix(String prefix) {
    if (prefix.isEmpty()) {
      return prefix;
    }
    String bad = problem(prefix, true);
    if (bad != null) {
      throw new IllegalArgumentException("bad remote key prefix \"" + prefix + "\": " + bad);
    }
    return prefix;
  }

  /** What is wrong with {@code p} as a key (or prefix), or null. */
  private static String problem(String p, boolean prefix) {
    if (p == null || p.isEmpty()) {
      return "empty";
    }
    if (p.getBytes(StandardCharsets.UTF_8).length > MAX_BYTES) {
      return "longer than " + MAX_BYTES + " bytes";
    }
    if (p.startsWith("/")) {
      return "absolute (starts with '/')";
    }
    if (p.endsWith("/") && !prefix) {
      return "ends with '/'";
    }
    for (int i = 0; i < p.length(); i++) {
      char c = p.charAt(i);
      if (c < 0x20 || c == 0x7f) {
        return "control character at " + i;
      }
      if (c == '\\') {
        return "backslash at " + i;
      }
    }
    String[] segments = p.split("/", -1);
    int last = segments.length - 1;
    for (int i = 0; i <= last; i++) {
      String s = segments[i];
      if (s.isEmpty() && !(prefix && i == last)) {
        return "empty segment";
      }
      if (s.startsWith(".")) {
        return "segment \"" + s + "\" starts with '.'";
      }
    }
    return null;
  }

  @Override
  public int compareTo(RemoteKey o) {
    return compareUtf8(path, o.path);
  }

  /**
   * S3's listing order: by UTF-8 bytes. It equals UTF-16 order except for characters beyond the
   * BMP, so both backends sort the same way.
   */
  static int compareUtf8(String a, String b) {
    return java.util.Arrays.compareUnsigned(
        a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
  }

  @Override
  public String toString() {
    return path;
  }
}
