package io.zenith.layer.internal.archfixture;

/**
 * Stands for a layer-store type shared between the layer store's own packages only ({@code
 * ..internal..}); {@code ModuleLayeringTest} shows that another module using it breaks the rule.
 * Test sources only.
 */
public final class Hidden {
  private Hidden() {}

  /** Something a module outside the layer store must not call. */
  public static int secret() {
    return 42;
  }
}
