package io.zenith.page.fuse;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Where the filesystem reads what the compute has not written: relation listings and pages of one
 * timeline at one LSN. Implementations are thread-safe; their calls block, each bounded by a
 * timeout after which they throw.
 */
interface PageSource extends AutoCloseable {
  /** A relation fork of a database listing, with its size in blocks. */
  record Fork(int relNumber, ForkNumber fork, long blocks) {}

  /** Every relation fork of a database; empty if the database does not exist at the LSN. */
  List<Fork> relations(int spcOid, int dbOid) throws IOException;

  /** Fills {@code into} with {@code count} pages of a fork from {@code firstBlock}. */
  void read(RelTag rel, ForkNumber fork, long firstBlock, int count, ByteBuffer into)
      throws IOException;

  @Override
  void close();
}
