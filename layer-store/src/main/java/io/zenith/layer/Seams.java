package io.zenith.layer;

import java.util.Locale;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The points between the durable steps of layer maintenance where a crash leaves a state that the
 * next start must repair (or that is already consistent). Tests crash the process at each of them
 * ({@code ZENITH_TEST_CRASH_AT}, read once by {@code zenith pageserver run}) or throw from them in
 * process, and check that a restart finds no index entry naming a missing file, no orphan file, and
 * the same pages.
 *
 * <p>Production code installs nothing: reaching a seam costs one volatile read. Thread-safe.
 */
public final class Seams {
  /**
   * A seam: those of maintenance passes in the order a pass reaches them, then those of uploads and
   * remote deletions ({@link #remote()}, reached only with remote storage).
   */
  public enum Seam {
    /** An image layer file is durable; the index does not name it yet. */
    IMAGE_WRITTEN,
    /** An image layer is committed to the index. */
    IMAGE_COMMITTED,
    /** The first L1 layer file of an L0 compaction is durable; the index names none of them. */
    L1_WRITTEN,
    /** The L1 layers replace the L0 layers in the index; the L0 files still exist. */
    L0_REPLACED,
    /** One of several unregistered layer files is deleted; the others still exist. */
    RETIRING,
    /** A raised GC cutoff is durable in the timeline's metadata; nothing is removed yet. */
    GC_CUTOFF_RECORDED,
    /** A batch of versions below the GC cutoff is removed from the index. */
    GC_VERSIONS_REMOVED,
    /** GC unregistered the layers nothing needs; their files still exist. */
    GC_LAYERS_UNREGISTERED,
    /** A layer file is uploaded; no uploaded index names it yet (ADR 0023). */
    REMOTE_LAYER_UPLOADED,
    /** A timeline's index is uploaded; the list of what it retired is not written yet. */
    REMOTE_INDEX_UPLOADED,
    /** A deletion list is durable; nothing of it is deleted yet (ADR 0024). */
    REMOTE_DELETION_QUEUED,
    /** Part of a deletion list's objects are deleted; the list is still there. */
    REMOTE_DELETION_PARTIAL;

    /** True for the seams of uploads and remote deletions. */
    public boolean remote() {
      return name().startsWith("REMOTE_");
    }

    /** The seam's name as {@code ZENITH_TEST_CRASH_AT} spells it: {@code image-written}. */
    public String settingName() {
      return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * The seam named {@code s} ({@link #settingName()}).
     *
     * @throws IllegalArgumentException naming the seams there are
     */
    public static Seam parse(String s) {
      for (Seam seam : values()) {
        if (seam.settingName().equals(s)) {
          return seam;
        }
      }
      StringBuilder known = new StringBuilder();
      for (Seam seam : values()) {
        known.append(known.isEmpty() ? "" : ", ").append(seam.settingName());
      }
      throw new IllegalArgumentException("unknown seam '" + s + "' (one of " + known + ")");
    }
  }

  private static volatile Consumer<Seam> hook = s -> {};

  private Seams() {}

  /** Runs {@code h} at every seam reached from now on, on the thread that reaches it. */
  public static void install(Consumer<Seam> h) {
    hook = Objects.requireNonNull(h);
  }

  /** Removes the installed hook. */
  public static void clear() {
    hook = s -> {};
  }

  static void reached(Seam seam) {
    hook.accept(seam);
  }
}
