package io.zenith.page.archfixture;

import io.zenith.layer.internal.archfixture.Hidden;

/**
 * A deliberate wrong import for {@code ModuleLayeringTest}: page-serving (allowed to use the layer
 * store's API) reaching into one of its {@code internal} packages. Test sources only.
 */
public final class ReachesIn {
  private ReachesIn() {}

  /** Uses an internal type of another module. */
  public static int peek() {
    return Hidden.secret();
  }
}
