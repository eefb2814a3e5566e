package io.zenith.it.support;

import io.r2dbc.postgresql.PostgresqlConnectionConfiguration;
import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.r2dbc.spi.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The bank-transfer workload: clients move money between accounts, one transfer per transaction
 * (two updates and a row in {@code transfers}), so the total balance never changes. Every transfer
 * whose COMMIT returned is recorded, and so is every COMMIT whose outcome is unknown (the
 * connection broke during it), so that another compute can be checked afterwards: the total, and
 * each acknowledged transfer's row.
 *
 * <p>Each client is a thread of its own doing blocking calls; no statement timeout is ever set (a
 * cancelled wait for synchronous replication reports the transaction as committed).
 */
public final class BankWorkload implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(BankWorkload.class);
  private static final Duration CALL = Duration.ofMinutes(5);

  /** A transfer as (client, sequence number within the client). */
  public record TransferId(int client, int seq) {
    /**
     * A spread hash. A record's default hash combines its fields linearly, so with a few clients
     * and sequential numbers almost every hash is shared by all clients; {@code Set.copyOf} (linear
     * probing) then took tens of minutes over the ~10^5 transfers of a long run.
     */
    @Override
    public int hashCode() {
      return Long.hashCode(
          ((long) client << 32 | Integer.toUnsignedLong(seq)) * 0x9E3779B97F4A7C15L);
    }
  }

  private final PostgresqlConnectionFactory factory;
  private final int accounts;
  private final long initialBalance;
  private final List<Thread> threads = new ArrayList<>();
  private final AtomicBoolean stop = new AtomicBoolean();
  private final Set<TransferId> acknowledged = ConcurrentHashMap.newKeySet();
  private final Set<TransferId> uncertain = ConcurrentHashMap.newKeySet();
  private final AtomicLong acknowledgedCount = new AtomicLong();
  private final List<CommitTimes> commitTimes = new CopyOnWriteArrayList<>();
  private final AtomicLong failures = new AtomicLong();
  private final List<String> errors = Collections.synchronizedList(new ArrayList<>());
  private volatile long startedNanos;

  private BankWorkload(PostgresqlConnectionFactory factory, int accounts, long initialBalance) {
    this.factory = factory;
    this.accounts = accounts;
    this.initialBalance = initialBalance;
  }

  public static PostgresqlConnectionFactory factory(String host, int port, String user) {
    return new PostgresqlConnectionFactory(
        PostgresqlConnectionConfiguration.builder()
            .host(host)
            .port(port)
            .username(user)
            .database("postgres")
            .applicationName("bank")
            .connectTimeout(Duration.ofSeconds(10))
            .build());
  }

  /**
   * Creates the tables ({@code accounts} rows of {@code initialBalance}) through {@code factory}.
   */
  public static BankWorkload create(
      PostgresqlConnectionFactory factory, int accounts, long initialBalance) {
    BankWorkload w = new BankWorkload(factory, accounts, initialBalance);
    w.withConnection(
        c ->
            exec(
                c,
                "create table bank (id int primary key, balance bigint not null);"
                    + " create table transfers (client int, seq int, src int, dst int,"
                    + " amount bigint, primary key (client, seq));"
                    + " insert into bank select i, "
                    + initialBalance
                    + " from generate_series(1, "
                    + accounts
                    + ") i"));
    return w;
  }

  /** Starts {@code clients} client threads. */
  public BankWorkload start(int clients) {
    startedNanos = System.nanoTime();
    for (int i = 0; i < clients; i++) {
      CommitTimes times = new CommitTimes();
      commitTimes.add(times);
      int client = i;
      Thread t = new Thread(() -> runClient(client, times), "bank-client-" + i);
      t.setDaemon(true);
      threads.add(t);
      t.start();
    }
    return this;
  }

  private void runClient(int client, CommitTimes times) {
    Random r = new Random(client * 7919L + 1);
    int seq = 0;
    Connection c = null;
    while (!stop.get()) {
      try {
        if (c == null) {
          c = Mono.from(factory.create()).block(CALL);
        }
        int a = 1 + r.nextInt(accounts);
        int b = 1 + r.nextInt(accounts - 1);
        if (b >= a) {
          b++;
        }
        long amount = 1 + r.nextInt(100);
        seq++;
        TransferId id = new TransferId(client, seq);
        // Lock rows in id order: concurrent transfers never deadlock.
        int lo = Math.min(a, b);
        int hi = Math.max(a, b);
        exec(
            c,
            "begin; select balance from bank where id in ("
                + lo
                + ", "
                + hi
                + ") order by id for update;"
                + " update bank set balance = balance - "
                + amount
                + " where id = "
                + a
                + "; update bank set balance = balance + "
                + amount
                + " where id = "
                + b
                + "; insert into transfers values ("
                + client
                + ", "
                + seq
                + ", "
                + a
                + ", "
                + b
                + ", "
                + amount
                + ")");
        uncertain.add(id);
        exec(c, "commit");
        uncertain.remove(id);
        acknowledged.add(id);
        acknowledgedCount.incrementAndGet();
        times.add(System.nanoTime());
      } catch (RuntimeException e) {
        failures.incrementAndGet();
        String m = String.valueOf(e.getMessage());
        if (errors.size() < 100) {
          errors.add(m);
        }
        log.debug("bank client {}: {}", client, m);
        if (c != null) {
          Mono.from(c.close()).onErrorComplete().block(CALL);
          c = null;
        }
        sleep(200);
      }
    }
    if (c != null) {
      Mono.from(c.close()).onErrorComplete().block(CALL);
    }
  }

  /** Stops the clients and waits for them (each finishes its transaction). */
  public void stop() {
    stop.set(true);
    for (Thread t : threads) {
      try {
        t.join(CALL.toMillis());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  @Override
  public void close() {
    stop();
  }

  public Set<TransferId> acknowledged() {
    return Collections.unmodifiableSet(new HashSet<>(acknowledged));
  }

  /**
   * How many transfers were acknowledged so far: cheap, for polling (a copy of {@link
   * #acknowledged()} costs milliseconds once there are 100 000 of them).
   */
  public long acknowledgedCount() {
    return acknowledgedCount.get();
  }

  public Set<TransferId> uncertain() {
    return Collections.unmodifiableSet(new HashSet<>(uncertain));
  }

  public long failures() {
    return failures.get();
  }

  public List<String> errors() {
    return List.copyOf(errors);
  }

  /**
   * For each client, the periods of length {@code period} since the start (up to now) in which it
   * committed nothing: empty for every client means every client progressed in every period.
   */
  public List<String> stalls(Duration period) {
    List<String> out = new ArrayList<>();
    long now = System.nanoTime();
    int periods = (int) ((now - startedNanos) / period.toNanos());
    for (int client = 0; client < commitTimes.size(); client++) {
      boolean[] seen = new boolean[periods];
      for (long t : commitTimes.get(client).snapshot()) {
        int p = (int) ((t - startedNanos) / period.toNanos());
        if (p < periods) {
          seen[p] = true;
        }
      }
      for (int p = 0; p < periods; p++) {
        if (!seen[p]) {
          out.add("client " + client + " committed nothing in period " + p);
        }
      }
    }
    return out;
  }

  /**
   * One client's commit times (System.nanoTime()), appended by the client, read by {@link #stalls}:
   * an amortized O(1) append, since chaos runs commit hundreds of thousands of transfers and a copy
   * per append would make the test itself the bottleneck.
   */
  private static final class CommitTimes {
    private long[] times = new long[1024];
    private int size;

    synchronized void add(long t) {
      if (size == times.length) {
        times = Arrays.copyOf(times, size * 2);
      }
      times[size++] = t;
    }

    synchronized long[] snapshot() {
      return Arrays.copyOf(times, size);
    }
  }

  /** The expected total of all balances. */
  public long expectedTotal() {
    return accounts * initialBalance;
  }

  /** What a compute holds: the total balance and the transfers recorded. */
  public record Snapshot(long total, Set<TransferId> transfers) {}

  /**
   * Reads the total and the transfers through {@code other} (another compute). The transfers come
   * as one aggregated text row: mapping each row through R2DBC took 80 s for 100 000 transfers with
   * the tests' paranoid leak detection (a ByteBuf tracked per row), one row takes a fraction of a
   * second.
   */
  public static Snapshot read(PostgresqlConnectionFactory other) {
    Connection c = Mono.from(other.create()).block(CALL);
    try {
      long total =
          Flux.from(c.createStatement("select sum(balance) from bank").execute())
              .flatMap(res -> res.map((row, m) -> row.get(0, Long.class)))
              .blockFirst(CALL);
      String all =
          Flux.from(
                  c.createStatement(
                          "select coalesce(string_agg(client || ' ' || seq, ','), '') from"
                              + " transfers")
                      .execute())
              .flatMap(res -> res.map((row, m) -> row.get(0, String.class)))
              .blockFirst(CALL);
      Set<TransferId> ids = new HashSet<>();
      for (String id : all.isEmpty() ? new String[0] : all.split(",")) {
        int space = id.indexOf(' ');
        ids.add(
            new TransferId(
                Integer.parseInt(id.substring(0, space)),
                Integer.parseInt(id.substring(space + 1))));
      }
      return new Snapshot(total, Collections.unmodifiableSet(ids));
    } finally {
      Mono.from(c.close()).onErrorComplete().block(CALL);
    }
  }

  /**
   * Up to 20 of the elements of {@code expected} that {@code actual} lacks, and how many more
   * (empty if it has them all): a hash lookup each, where AssertJ's {@code containsAll} scans
   * {@code actual} for every element (minutes for tens of thousands of transfers), and a failure
   * message of bounded size.
   */
  public static <T> List<String> missing(Set<T> expected, Set<T> actual) {
    List<String> out = new ArrayList<>();
    long count = 0;
    for (T t : expected) {
      if (!actual.contains(t) && ++count <= 20) {
        out.add(String.valueOf(t));
      }
    }
    if (count > 20) {
      out.add("... " + (count - 20) + " more");
    }
    return out;
  }

  private void withConnection(java.util.function.Consumer<Connection> work) {
    Connection c = Mono.from(factory.create()).block(CALL);
    try {
      work.accept(c);
    } finally {
      Mono.from(c.close()).onErrorComplete().block(CALL);
    }
  }

  private static void exec(Connection c, String sql) {
    Flux.from(c.createBatch().add(sql).execute())
        .flatMap(res -> res.getRowsUpdated())
        .then()
        .block(CALL);
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
