package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * LSNs that readers in progress hold (a basebackup, a read-only compute's reads): GC never raises a
 * timeline's cutoff above the lowest, and a pin below the cutoff is refused. Pinning and raising
 * the cutoff are serialized by this object's monitor, so neither misses the other. Thread-safe.
 */
final class LsnPins {
  private final Map<Object, Lsn> pins = new HashMap<>();

  /** Pins {@code lsn} unless it is below {@code cutoff} (read under the monitor). */
  synchronized AutoCloseable pin(Lsn lsn, Supplier<Lsn> cutoff, Supplier<String> timeline) {
    Lsn c = cutoff.get();
    if (c.isValid() && lsn.isBefore(c)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "LSN " + lsn + " of timeline " + timeline.get() + " is below its GC cutoff " + c);
    }
    Object token = new Object();
    pins.put(token, lsn);
    return () -> {
      synchronized (LsnPins.this) {
        pins.remove(token);
      }
    };
  }

  /** Makes a GC cutoff durable. */
  @FunctionalInterface
  interface CutoffWriter {
    void write(Lsn cutoff) throws java.io.IOException;
  }

  /**
   * Raises the cutoff from {@code current} to {@code wanted} capped by the lowest pin, under the
   * monitor (so no pin below it is granted meanwhile); never lowers it.
   *
   * @return the cutoff in force afterwards
   */
  synchronized Lsn raise(Lsn wanted, Lsn current, CutoffWriter write) throws java.io.IOException {
    Lsn target = Lsn.min(wanted, lowest());
    if (current.isValid() && !target.isAfter(current)) {
      return current;
    }
    write.write(target);
    return target;
  }

  /** The lowest pinned LSN, or {@link Lsn#MAX}. Call it under this object's monitor. */
  Lsn lowest() {
    return pins.values().stream().min(Lsn::compareTo).orElse(Lsn.MAX);
  }
}
