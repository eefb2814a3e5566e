package io.zenith.layer.archfixture;

import io.zenith.gateway.http.Json;

/**
 * A deliberate wrong import for {@code ModuleLayeringTest}: a class in the layer store's package
 * tree that uses the gateway. Test sources only, so the rule over the main code never sees it.
 */
public final class ReachesUp {
  private ReachesUp() {}

  /** Uses the gateway's JSON mapper: an upward dependency. */
  public static String render(Object value) throws Exception {
    return Json.MAPPER.writeValueAsString(value);
  }
}
