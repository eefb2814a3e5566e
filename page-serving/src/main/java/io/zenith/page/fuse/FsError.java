package io.zenith.page.fuse;

import java.io.Serial;

/** A filesystem call refused with an errno (not an I/O failure: those are EIO). Immutable. */
final class FsError extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  enum Kind {
    NOT_FOUND,
    EXISTS,
    NOT_DIR,
    IS_DIR,
    NOT_EMPTY,
    INVALID
  }

  private final Kind kind;

  FsError(Kind kind, String path) {
    super(kind + ": " + path, null, false, false);
    this.kind = kind;
  }

  Kind kind() {
    return kind;
  }
}
