package io.zenith.replication.safekeeper;

import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * Sync-safekeepers: what the control plane runs before a primary compute starts on a timeline
 * (DESIGN.md §4). It proposes a term above every term seen; with a majority of votes, the donor is
 * the voter with the highest (last log term, flush LSN); every voter adopts the donor's history
 * plus (T, L), where L is the end of the donor's last complete record, copying what it lacks from
 * the donor. Once a majority has adopted, everything up to L is on a quorum: L is the commit LSN,
 * the basebackup is taken at L and the compute of term T continues the WAL there.
 */
public final class Election {
  private static final Logger log = LoggerFactory.getLogger(Election.class);

  /** A safekeeper as the election sees it (in-process or over its HTTP API). Calls may block. */
  public interface Member {
    int id();

    TimelineStatus status() throws Exception;

    VoteResponse vote(long term) throws Exception;

    TimelineStatus adopt(long term, List<TermEntry> history, Lsn upTo, int donorId)
        throws Exception;
  }

  /**
   * An elected term.
   *
   * @param startLsn where the term's WAL starts (the commit LSN; take the basebackup here)
   * @param history the term history ending with (term, startLsn)
   * @param members ids of the safekeepers that adopted it
   */
  public record Result(
      long term, Lsn startLsn, List<TermEntry> history, int donor, List<Integer> members) {}

  /** The election could not reach a majority; the message says who failed and why. */
  public static final class ElectionFailed extends Exception {
    @java.io.Serial private static final long serialVersionUID = 1L;

    ElectionFailed(String message) {
      super(message);
    }
  }

  private Election() {}

  /**
   * Runs an election among {@code members} (all safekeepers of the timeline), each call limited to
   * {@code callTimeout} (adoptions, which may copy WAL, to ten times that).
   */
  public static Result run(List<Member> members, Duration callTimeout) throws ElectionFailed {
    int quorum = members.size() / 2 + 1;
    long proposal = 0;
    List<String> problems = new ArrayList<>();
    for (Answer<TimelineStatus> a : all(members, Member::status, callTimeout)) {
      if (a.value().isPresent()) {
        proposal = Math.max(proposal, a.value().get().promisedTerm());
      }
    }
    for (int attempt = 0; attempt < 3; attempt++) {
      long term = proposal + 1;
      List<Answer<VoteResponse>> votes = all(members, m -> m.vote(term), callTimeout);
      List<VoteResponse> granted = new ArrayList<>();
      problems.clear();
      long highest = term;
      for (Answer<VoteResponse> a : votes) {
        if (a.value().isEmpty()) {
          problems.add("safekeeper " + a.member().id() + ": " + a.error());
        } else if (a.value().get().granted()) {
          granted.add(a.value().get());
        } else {
          highest = Math.max(highest, a.value().get().term());
          problems.add(
              "safekeeper " + a.member().id() + " has promised term " + a.value().get().term());
        }
      }
      if (granted.size() < quorum) {
        if (highest > term) {
          proposal = highest; // someone else is electing: go above it
          continue;
        }
        throw new ElectionFailed(
            "term "
                + term
                + " got "
                + granted.size()
                + " of "
                + members.size()
                + " votes, "
                + quorum
                + " needed: "
                + String.join("; ", problems));
      }
      VoteResponse donor =
          granted.stream()
              .max(
                  Comparator.comparingLong(VoteResponse::lastLogTerm)
                      .thenComparing(VoteResponse::flushLsn))
              .orElseThrow();
      Lsn start = donor.flushLsn();
      List<TermEntry> history = TermHistory.append(donor.history(), term, start);
      log.info(
          "term {}: {} votes; donor safekeeper {} (term {}, WAL up to {}); history {}",
          term,
          granted.size(),
          donor.safekeeperId(),
          donor.lastLogTerm(),
          start,
          TermHistory.format(history));
      List<Member> voters =
          members.stream()
              .filter(m -> granted.stream().anyMatch(v -> v.safekeeperId() == m.id()))
              .toList();
      List<Answer<TimelineStatus>> adopted =
          all(
              voters,
              m -> m.adopt(term, history, start, donor.safekeeperId()),
              callTimeout.multipliedBy(10));
      List<Integer> ok = new ArrayList<>();
      problems.clear();
      for (Answer<TimelineStatus> a : adopted) {
        if (a.value().isPresent()) {
          ok.add(a.member().id());
        } else {
          problems.add("safekeeper " + a.member().id() + ": " + a.error());
        }
      }
      if (ok.size() < quorum) {
        throw new ElectionFailed(
            "term "
                + term
                + " was adopted by "
                + ok.size()
                + " of "
                + members.size()
                + " safekeepers, "
                + quorum
                + " needed: "
                + String.join("; ", problems));
      }
      return new Result(term, start, history, donor.safekeeperId(), List.copyOf(ok));
    }
    throw new ElectionFailed(
        "other elections kept promising higher terms: " + String.join("; ", problems));
  }

  private record Answer<T>(Member member, Optional<T> value, String error) {}

  private interface Call<T> {
    T call(Member m) throws Exception;
  }

  /** Calls every member in parallel; each answer or its error, in the members' order. */
  private static <T> List<Answer<T>> all(List<Member> members, Call<T> call, Duration timeout) {
    return Flux.fromIterable(members)
        .flatMapSequential(
            m ->
                Mono.fromCallable((Callable<T>) () -> call.call(m))
                    .subscribeOn(Schedulers.boundedElastic())
                    .timeout(timeout)
                    .map(v -> new Answer<>(m, Optional.of(v), ""))
                    .onErrorResume(
                        e ->
                            Mono.just(
                                new Answer<T>(
                                    m,
                                    Optional.empty(),
                                    e instanceof java.util.concurrent.TimeoutException
                                        ? "no answer within " + timeout.toMillis() + " ms"
                                        : String.valueOf(e.getMessage())))))
        .collectList()
        .block();
  }
}
