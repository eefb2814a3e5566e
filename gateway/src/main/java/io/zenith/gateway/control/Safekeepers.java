package io.zenith.gateway.control;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The repository's safekeepers ({@code [[safekeepers]]} of {@code config.toml}, data directories
 * {@code safekeepers/sk<id>/}): their processes, their API clients, and what {@code pg start} asks
 * of them for a primary — the timeline on every safekeeper, an election (DESIGN.md §4), the compute
 * to pull from, and that the compute has stopped. Blocking; not thread-safe (one CLI command at a
 * time).
 */
public final class Safekeepers {
  /**
   * Longest a control-plane call waits; an adoption copies WAL, so it gets ten election timeouts.
   */
  private static final Duration CALL_TIMEOUT = Duration.ofMinutes(2);

  /** Each election call's bound (adoptions: ten times this). */
  static final Duration ELECTION_TIMEOUT = Duration.ofSeconds(10);

  /** What {@code zenith status} waits for a safekeeper's answer. */
  private static final Duration STATUS_TIMEOUT = Duration.ofSeconds(3);

  private final Repository repo;

  Safekeepers(Repository repo) {
    this.repo = repo;
  }

  /** Every configured safekeeper, by id. */
  public List<RepoConfig.SafekeeperAddresses> all() {
    return repo.config().safekeepers();
  }

  public boolean none() {
    return all().isEmpty();
  }

  /** The safekeeper with {@code id}; a clear error if there is none. */
  public RepoConfig.SafekeeperAddresses get(int id) {
    return repo.config()
        .safekeeper(id)
        .orElseThrow(
            () ->
                new ControlPlaneException(
                    "unknown safekeeper "
                        + id
                        + (none()
                            ? " (this repository was made without safekeepers; a new one gets"
                                + " them with `zenith init --safekeepers N`)"
                            : " (safekeepers: " + ids() + ")")));
  }

  /** "1, 2, 3". */
  public String ids() {
    return all().stream().map(s -> s.id().toString()).collect(Collectors.joining(", "));
  }

  /** {@code safekeepers/sk<id>}. */
  public Path dir(int id) {
    return repo.safekeepersDir().resolve("sk" + id);
  }

  /** Safekeeper {@code id} as a background process; SIGKILL 30 s after SIGTERM. */
  public ServiceProcess process(int id) {
    RepoConfig.SafekeeperAddresses a = get(id);
    SafekeeperClient c = client(id, STATUS_TIMEOUT);
    return new ServiceProcess(
        "safekeeper " + id,
        "safekeeper",
        dir(id),
        c.baseUrl(),
        c::isUp,
        "a safekeeper of another repository?; stop it or change listen_http of safekeeper "
            + a.id()
            + " in config.toml and safekeepers/sk"
            + a.id()
            + "/safekeeper.toml",
        Duration.ofSeconds(30),
        "ZENITH_SAFEKEEPER_JAVA_OPTS",
        repo.config().pgOsUser(),
        () -> repo.auth().writeServiceToken(dir(id)));
  }

  /**
   * A client of every safekeeper, each of which has just answered its status: a deletion asks this
   * first, so that it deletes on all of them or on none (an unreachable one is an error here).
   */
  List<SafekeeperClient> allAnswering() {
    List<SafekeeperClient> clients = new ArrayList<>();
    for (RepoConfig.SafekeeperAddresses a : all()) {
      SafekeeperClient c = client(a.id());
      c.status();
      clients.add(c);
    }
    return clients;
  }

  /** The API of safekeeper {@code id}; one that does not answer is a ControlPlaneException. */
  public SafekeeperClient client(int id) {
    return client(id, CALL_TIMEOUT);
  }

  private SafekeeperClient client(int id, Duration timeout) {
    return new SafekeeperClient(
        id,
        get(id).http(),
        timeout,
        "start it with `zenith safekeeper start " + id + "`",
        ControlPlaneException::new,
        repo.auth()::adminToken);
  }

  /**
   * Starts safekeeper {@code id} and says where it listens: "starting safekeeper 1 ... running".
   */
  public void start(int id, PrintWriter out) {
    RepoConfig.SafekeeperAddresses a = get(id);
    checkSettingsAgree(a);
    process(id).start(out, a.listenHttp(), a.listenPg());
  }

  /** config.toml and the safekeeper's own safekeeper.toml must name the same addresses. */
  private void checkSettingsAgree(RepoConfig.SafekeeperAddresses a) {
    if (!Files.isRegularFile(dir(a.id()).resolve(SafekeeperSettings.FILE_NAME))) {
      throw new ControlPlaneException(
          "safekeeper "
              + a.id()
              + " has no "
              + dir(a.id()).resolve(SafekeeperSettings.FILE_NAME)
              + " (was the repository's safekeepers/ directory deleted?)");
    }
    SafekeeperSettings s;
    try {
      s = SafekeeperSettings.load(dir(a.id()));
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(e.getMessage());
    }
    if (s.id() != a.id().intValue()
        || !s.listenHttp().equals(a.listenHttp())
        || !s.listenPg().equals(a.listenPg())) {
      throw new ControlPlaneException(
          "config.toml says safekeeper "
              + a.id()
              + " listens on "
              + a.listenHttp()
              + " / "
              + a.listenPg()
              + " but "
              + dir(a.id()).resolve(SafekeeperSettings.FILE_NAME)
              + " says id "
              + s.id()
              + ", "
              + s.listenHttp()
              + " / "
              + s.listenPg()
              + "; make them agree");
    }
  }

  /**
   * Writes the data directory and {@code safekeeper.toml} of every safekeeper of {@code sks}, each
   * with the others as peers (init).
   */
  static void createDataDirs(
      Path safekeepersDir,
      List<RepoConfig.SafekeeperAddresses> sks,
      boolean auth,
      RemoteStorageConfig remote)
      throws IOException {
    for (RepoConfig.SafekeeperAddresses a : sks) {
      Path d = safekeepersDir.resolve("sk" + a.id());
      Files.createDirectories(d);
      List<SafekeeperSettings.Peer> peers =
          sks.stream()
              .filter(o -> !o.id().equals(a.id()))
              .map(o -> new SafekeeperSettings.Peer(o.id(), o.listenHttp(), o.listenPg()))
              .toList();
      SafekeeperSettings d0 = SafekeeperSettings.DEFAULT;
      new SafekeeperSettings(
              a.id(),
              a.listenHttp(),
              a.listenPg(),
              d0.maxReplicationWriteLag(),
              d0.maxReplicationFlushLag(),
              d0.maxReplicationApplyLag(),
              peers,
              // The local pageserver (safekeepers listen on loopback): its feedback alone moves
              // the retention horizon and the lag limits (ADR 0007).
              SafekeeperSettings.Pageserver.LOCAL)
          .withAuth(
              auth,
              auth ? RepoAuth.publicKeyPathFrom(safekeepersDir.getParent(), d) : null,
              auth ? RepoAuth.SERVICE_TOKEN : null)
          .withRemoteStorage(remote.relativeTo(d))
          .validate()
          .write(d);
    }
  }

  // ---------------------------------------------------------------- for a primary compute

  /** What one safekeeper says about a timeline: its status, or why it did not say. */
  record Answer(
      RepoConfig.SafekeeperAddresses safekeeper,
      Optional<SafekeeperApiModel.TimelineInfo> timeline,
      boolean missing,
      String problem) {}

  /** Asks every safekeeper about {@code timeline}, in id order; a hung one costs 10 s. */
  List<Answer> ask(TenantId tenant, TimelineId timeline) {
    List<Answer> out = new ArrayList<>();
    for (RepoConfig.SafekeeperAddresses a : all()) {
      try {
        SafekeeperClient c = client(a.id(), ELECTION_TIMEOUT);
        out.add(new Answer(a, Optional.of(c.timeline(tenant, timeline)), false, ""));
      } catch (JsonHttpClient.ApiError e) {
        out.add(new Answer(a, Optional.empty(), e.status() == 404, e.getMessage()));
      } catch (ControlPlaneException e) {
        out.add(new Answer(a, Optional.empty(), false, e.getMessage()));
      }
    }
    return out;
  }

  /**
   * Creates {@code identity}'s timeline on every safekeeper that answered it is missing (unless
   * gossip did it meanwhile with the same identity); returns how many safekeepers hold the timeline
   * afterwards.
   */
  int createMissing(List<Answer> answers, Identity identity, PrintWriter out) {
    int holding = 0;
    for (Answer a : answers) {
      if (a.timeline().isPresent()) {
        holding++;
      } else if (a.missing()) {
        // The safekeeper's default lag limits (its safekeeper.toml): the pageserver reads from the
        // safekeepers and reports its positions, so they hold a compute back only while the
        // pageserver lags (DESIGN.md §4 backpressure; ADR 0005 §2).
        // Gossip may have created it from a peer meanwhile (the same identity): that is fine.
        boolean created = client(a.safekeeper().id()).ensureTimeline(identity, null).created();
        holding++;
        out.println(
            (created ? "created timeline " : "timeline ")
                + identity.timeline()
                + " on safekeeper "
                + a.safekeeper().id()
                + " from "
                + identity.startLsn()
                + (created ? "" : " (learned from its peers)"));
      }
    }
    return holding;
  }

  /**
   * Runs an election over every safekeeper (a majority must vote and adopt).
   *
   * @throws ControlPlaneException naming the safekeepers that did not answer or refused
   */
  Election.Result elect(TenantId tenant, TimelineId timeline) {
    List<Election.Member> members = new ArrayList<>();
    for (RepoConfig.SafekeeperAddresses a : all()) {
      members.add(client(a.id()).member(tenant, timeline));
    }
    try {
      return Election.run(members, ELECTION_TIMEOUT);
    } catch (Election.ElectionFailed e) {
      throw new ControlPlaneException(
          "no majority of the safekeepers ("
              + repo.config().quorum()
              + " of "
              + all().size()
              + ") elected a term for timeline "
              + timeline
              + ": "
              + e.getMessage());
    }
  }

  /**
   * Tells every safekeeper to pull the timeline's WAL from the compute of {@code source}; returns
   * the ids that accepted, and a problem per id that did not.
   */
  Map<Integer, String> setCompute(
      TenantId tenant, TimelineId timeline, ComputeSource source, List<Integer> accepted) {
    return askEach(
        (id, c) -> {
          c.setCompute(tenant, timeline, source);
          accepted.add(id);
        });
  }

  /**
   * Tells every safekeeper that the compute of {@code term} has stopped (best effort: each one is
   * asked once, with the election calls' bound); returns a problem per safekeeper that was not
   * told. One that does not hold the timeline has nothing to stop.
   */
  Map<Integer, String> stopCompute(TenantId tenant, TimelineId timeline, long term) {
    return askEach(
        (id, c) -> {
          try {
            c.stopCompute(tenant, timeline, term);
          } catch (JsonHttpClient.ApiError e) {
            if (e.status() != 404) {
              throw e;
            }
          }
        });
  }

  /** One call to a safekeeper's API. */
  @FunctionalInterface
  private interface Call {
    void on(int id, SafekeeperClient client);
  }

  /**
   * Makes {@code call} on every safekeeper, each once with the election calls' bound; returns a
   * problem per safekeeper whose call failed (an API error, or nothing answering).
   */
  private Map<Integer, String> askEach(Call call) {
    Map<Integer, String> problems = new LinkedHashMap<>();
    for (RepoConfig.SafekeeperAddresses a : all()) {
      try {
        call.on(a.id(), client(a.id(), ELECTION_TIMEOUT));
      } catch (JsonHttpClient.ApiError | ControlPlaneException e) {
        problems.put(a.id(), e.getMessage());
      }
    }
    return problems;
  }

  /** The libpq endpoints of every safekeeper, for the pageserver's WAL source. */
  List<ApiModel.SafekeeperEndpoint> endpoints() {
    return all().stream()
        .map(a -> new ApiModel.SafekeeperEndpoint(a.id(), a.pg().getHostString(), a.pg().getPort()))
        .toList();
  }

  /** Every timeline a running safekeeper holds, for {@code zenith status}; empty if it is down. */
  public Optional<List<SafekeeperApiModel.TimelineInfo>> timelines(int id) {
    try {
      return Optional.of(
          client(id, STATUS_TIMEOUT).timelines(repo.config().tenant()).stream()
              .sorted(java.util.Comparator.comparing(SafekeeperApiModel.TimelineInfo::timelineId))
              .toList());
    } catch (RuntimeException e) {
      return Optional.empty();
    }
  }
}
