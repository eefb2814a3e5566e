package io.zenith.page.fuse;

import io.zenith.page.stream.PagestreamClient;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.page.stream.PagestreamResponse;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.io.IOException;
import java.io.Serial;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Pages and listings from the pageserver's pagestream at the compute's LSN, over a pool of
 * connections (at most {@link LazyFsConfig#connections()}, opened on demand, one per FUSE thread
 * that reads at a time). A read of several pages is sent as pipelined batch GetPage requests of up
 * to 32 pages on one connection. The not-modified-since LSN of every request is the configured LSN.
 * For a primary, the request LSN is {@link PagestreamRequest#LATEST}: the compute is the only
 * writer of its timeline, so nothing it did not write changed since its start, and the pageserver
 * answers at its newest LSN, which GC never passes, however long the compute runs (ADR 0021, "GC
 * and lazy computes"). A read-only compute's requests are at its LSN, and each connection is opened
 * with that LSN pinned ({@link PagestreamClient#connect(String, int, String, String,
 * io.zenith.wal.TenantId, io.zenith.wal.TimelineId, Lsn, java.time.Duration) connect}), so GC
 * leaves it readable while any connection is open, and an {@link LsnHold} keeps one open (and
 * checked) from the mount on, whether the compute reads or not. A connection that fails or times
 * out is dropped (never reused half-read); the next call opens a new one. A call that fails on a
 * pooled connection other than by an answer or a timeout (the pageserver restarted while it sat
 * idle) is made once more on a new connection. Thread-safe.
 */
final class RemotePages implements PageSource {
  private final LazyFsConfig config;
  private final ConcurrentLinkedDeque<PagestreamClient> idle = new ConcurrentLinkedDeque<>();
  private final Semaphore permits;
  private final AtomicLong ids = new AtomicLong();
  private final Lsn requestLsn;
  private final LsnHold hold;
  private volatile boolean closed;

  RemotePages(LazyFsConfig config) {
    this.config = config;
    this.permits = new Semaphore(config.connections());
    this.requestLsn = config.primary() ? PagestreamRequest.LATEST : config.lsn();
    this.hold = config.primary() ? null : new LsnHold(config, () -> connect(config));
  }

  @Override
  public List<Fork> relations(int spcOid, int dbOid) throws IOException {
    PagestreamResponse r =
        use(
            c ->
                c.call(
                    new PagestreamRequest.ListRelations(
                        ids.incrementAndGet(), requestLsn, config.lsn(), spcOid, dbOid)));
    return switch (r) {
      case PagestreamResponse.Relations rs -> {
        List<Fork> out = new ArrayList<>(rs.relations().size());
        for (PagestreamResponse.Relation x : rs.relations()) {
          out.add(new Fork(x.relNumber(), x.fork(), Integer.toUnsignedLong(x.blocks())));
        }
        yield out;
      }
      case PagestreamResponse.Error e when e.sqlState().equals("3D000") -> List.of();
      default -> throw unexpected("relations of database " + dbOid, r);
    };
  }

  @Override
  public void read(RelTag rel, ForkNumber fork, long firstBlock, int count, ByteBuffer into)
      throws IOException {
    int start = into.position();
    use(
        c -> {
          into.position(start); // a call repeated on a new connection fills it again
          int sent = 0;
          while (sent < count) {
            int n = Math.min(PagestreamRequest.MAX_BATCH, count - sent);
            c.send(
                new PagestreamRequest.GetPages(
                    ids.incrementAndGet(),
                    requestLsn,
                    config.lsn(),
                    rel,
                    fork,
                    (int) (firstBlock + sent),
                    n));
            sent += n;
          }
          c.flush();
          int received = 0;
          while (received < count) {
            PagestreamResponse r = c.receive();
            if (!(r instanceof PagestreamResponse.Pages p)) {
              throw unexpected(rel + " " + fork.pgName() + " block " + (firstBlock + received), r);
            }
            for (byte[] page : p.pages()) {
              into.put(page);
              received++;
            }
          }
          return null;
        });
  }

  private interface Call<T> {
    T on(PagestreamClient c) throws IOException;
  }

  /** Runs a call on a pooled connection; a connection whose call failed is not returned. */
  private <T> T use(Call<T> call) throws IOException {
    if (closed) {
      throw new IOException("the filesystem is unmounted");
    }
    try {
      if (!permits.tryAcquire(config.timeout().toMillis(), TimeUnit.MILLISECONDS)) {
        throw new IOException(
            "no pagestream connection became free within " + config.timeout().toMillis() + " ms");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while waiting for a pagestream connection", e);
    }
    try {
      PagestreamClient pooled = idle.pollFirst();
      if (pooled == null) {
        return attempt(connect(config), call);
      }
      try {
        return attempt(pooled, call);
      } catch (ErrorAnswer | SocketTimeoutException e) {
        throw e; // the pageserver answered, or is slow: the connection was not the problem
      } catch (IOException e) {
        if (closed) {
          throw e;
        }
        // A pooled connection the pageserver dropped while it sat idle (a restart, whose pins went
        // with it): once more on a new one, as every call is a read and can be repeated.
        return attempt(connect(config), call);
      }
    } finally {
      permits.release();
    }
  }

  /** Runs a call on {@code c}; returns it to the pool if the call worked, else drops it. */
  private <T> T attempt(PagestreamClient c, Call<T> call) throws IOException {
    boolean ok = false;
    try {
      T result = call.on(c);
      ok = true;
      return result;
    } finally {
      if (ok && !closed) {
        idle.addFirst(c);
      } else {
        c.abort();
      }
    }
  }

  /** The pageserver answered with an error, or with something else than was asked. */
  private static final class ErrorAnswer extends IOException {
    @Serial private static final long serialVersionUID = 1L;

    ErrorAnswer(String message) {
      super(message);
    }
  }

  /** A new connection; a read-only compute's holds its LSN on the pageserver while it is open. */
  private static PagestreamClient connect(LazyFsConfig config) throws IOException {
    return PagestreamClient.connect(
        config.host(),
        config.port(),
        config.user(),
        config.password(),
        config.tenant(),
        config.timeline(),
        config.primary() ? null : config.lsn(),
        config.timeout());
  }

  private static IOException unexpected(String what, PagestreamResponse r) {
    if (r instanceof PagestreamResponse.Error e) {
      return new ErrorAnswer(
          "pagestream error for " + what + ": " + e.sqlState() + " " + e.message());
    }
    return new ErrorAnswer("unexpected pagestream answer for " + what + ": " + r.getClass());
  }

  @Override
  public void close() {
    closed = true;
    if (hold != null) {
      hold.close();
    }
    PagestreamClient c;
    while ((c = idle.pollFirst()) != null) {
      c.abort();
    }
  }
}
