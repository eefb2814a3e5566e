package io.zenith.wal;

/**
 * A relation fork ({@code ForkNumber}), with the names PostgreSQL prints and uses in file names.
 */
public enum ForkNumber {
  MAIN("main"),
  FSM("fsm"),
  VISIBILITY_MAP("vm"),
  INIT("init");

  private final String pgName;

  ForkNumber(String pgName) {
    this.pgName = pgName;
  }

  /** The name in {@code forkNames[]}: main, fsm, vm, init. */
  public String pgName() {
    return pgName;
  }

  /** The fork with PostgreSQL's number, or null if the number is not a fork. */
  public static ForkNumber ofNumber(int n) {
    return n >= 0 && n < ALL.length ? ALL[n] : null;
  }

  private static final ForkNumber[] ALL = values();
}
