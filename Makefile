# Zenith build entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# A JDK >= 25: JAVA_HOME if set, else the newest Temurin 25+ under /usr/lib/jvm.
JAVA_HOME ?= $(lastword $(sort $(wildcard /usr/lib/jvm/temurin-2[5-9]*)))
export JAVA_HOME
MVN := ./mvnw -B -ntp

# Debian packages the build and a compute need (PostgreSQL 15 server, its headers for the PGXS
# extension, a C toolchain, what the Maven Wrapper uses to download Maven, libfuse 3 for the
# compute agent's filesystem, ADR 0018): `make run` installs
# these. The tests also need bzip2 for PostgreSQL's source tarball (the regression suite).
DEB_RUN_PACKAGES := postgresql-15 postgresql-server-dev-15 build-essential curl unzip ca-certificates \
	fuse3 libfuse3-3
DEB_PACKAGES := $(DEB_RUN_PACKAGES) bzip2

# PostgreSQL 15's regression suite (from Debian's source package) and its C modules, for the
# redo-fidelity test (integration/pg-regress/fetch-suite.sh). Gitignored; the test reads it from
# here unless ZENITH_PG_REGRESS_DIR names another <cache>/current.
PG_REGRESS_CACHE ?= $(CURDIR)/.cache/pg-regress

.PHONY: all build run test test-long deps deps-run check-java format bench clean

all: build

build: deps-run check-java
	$(MVN) -DskipTests package
	@echo "built gateway/target/zenith.jar; try ./zenith --help"

# Install the Debian packages the build and a compute need if any is missing, build, create the
# repository if there is none (./.zenith or $ZENITH_REPO_DIR; one safekeeper; ZENITH_INIT_OPTS
# passes options to `zenith init`, e.g. other ports), start the pageserver and the safekeepers,
# create and start compute `main`, and print how to connect.
ZENITH_INIT_OPTS ?=
run: deps-run check-java
	$(MVN) -q -DskipTests -pl gateway -am package
	@if [ ! -f "$${ZENITH_REPO_DIR:-.zenith}/config.toml" ]; then ./zenith init $(ZENITH_INIT_OPTS); fi
	@./zenith start
	@./zenith pg show main >/dev/null 2>&1 || ./zenith pg create main
	@if ./zenith pg show main | grep -qx 'status: running'; then \
	  echo "compute main is already running"; \
	else \
	  ./zenith pg start main; \
	fi
	@port=$$(./zenith pg show main | sed -n 's/^address: .*://p'); \
	echo; echo "connect with:  psql postgresql://postgres@127.0.0.1:$$port/postgres"; \
	echo "stop with:     ./zenith stop"

test: deps check-java
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	$(MVN) verify 2>&1 | tee "$$log"; \
	awk '/^\[[A-Z]+\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$$/ { \
	       gsub(",", ""); run += $$4; skipped += $$10 } \
	     END { printf "zenith: %d tests run (%d skipped), all passed\n", run, skipped }' "$$log"

# The long safekeeper chaos runs (issue 4): bank transfers while safekeeper OS processes are
# SIGKILLed one at a time, for CHAOS_SECONDS (150 by default; `make test` runs them briefly),
# directly and through the zenith CLI (ending with a compute rebuilt from the pageserver).
# The soak and pageserver-crash runs (issue 9), through the zenith CLI: pgbench tpcb-like at scale
# 20, 8 clients, for SOAK_SECONDS with 1 and with 3 safekeepers and the default settings (`make
# test` runs 45 s at scale 5 with a 4MiB checkpoint_distance, 3 safekeepers); the pageserver SIGKILLed and
# restarted PSKILL_CYCLES times under the bank workload (3 in `make test`).
# Lazy computes (issue 13): a new branch of a pgbench scale-100 database answers its parent's sum
# on a lazy compute, and a pageserver kill mid-scan gives no wrong rows (scale 10 in `make test`).
# Uploads and remote deletions (issue 12): the pageserver SIGKILLed at each of the four remote seams,
# a fresh one attached after each, pages compared with the compute's (two seams in `make test`).
CHAOS_SECONDS ?= 150
SOAK_SECONDS ?= 600
PSKILL_CYCLES ?= 20
test-long: deps check-java
	$(MVN) -pl gateway,integration -am verify \
	  -Dtest='SafekeeperChaosTest,CliBankChaosTest,CliSoakTest,CliPageserverKillTest,CliLazyComputeTest,CliRemoteSeamCrashTest' \
	  -Dsurefire.failIfNoSpecifiedTests=false -Dzenith.chaos.seconds=$(CHAOS_SECONDS) \
	  -Dzenith.soak.seconds=$(SOAK_SECONDS) -Dzenith.soak.scale=20 -Dzenith.soak.safekeepers=1,3 \
	  -Dzenith.soak.checkpoint.distance=default -Dzenith.pskill.cycles=$(PSKILL_CYCLES) \
	  -Dzenith.lazy.scale=100 -Dzenith.remoteseams.all=true

# Installs whatever of DEB_PACKAGES is missing (apt-get update first; needs root or sudo), then
# fetches and builds PostgreSQL's regression suite into PG_REGRESS_CACHE unless it is there already
# (adding deb-src entries needs root or sudo once; the download and build do not).
deps:
	@$(call install-debs,$(DEB_PACKAGES))
	@integration/pg-regress/fetch-suite.sh "$(PG_REGRESS_CACHE)"

# What `make run` needs: DEB_RUN_PACKAGES, not the regression suite.
deps-run:
	@$(call install-debs,$(DEB_RUN_PACKAGES))

# $(call install-debs,packages): installs those of the Debian packages that are missing, as root or
# through sudo; says which and fails when it can do neither. PostgreSQL's packaging is told not to
# create a cluster of its own (Zenith's computes are the clusters).
define install-debs
missing=""; \
for p in $(1); do \
  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ]; then sudo=""; \
  elif command -v sudo >/dev/null; then sudo="sudo"; \
  else echo "make: missing Debian packages:$$missing (run as root or install them)" >&2; exit 1; fi; \
  echo "make: installing$$missing"; \
  $$sudo mkdir -p /etc/postgresql-common/createcluster.d; \
  echo "create_main_cluster = false" | $$sudo tee /etc/postgresql-common/createcluster.d/zenith.conf >/dev/null; \
  $$sudo apt-get update -q; \
  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
fi
endef

check-java:
	@[ -n "$(JAVA_HOME)" ] && [ -x "$(JAVA_HOME)/bin/java" ] || { \
	  echo "make: no JDK >= 25 found; set JAVA_HOME (Temurin 25 is expected at /usr/lib/jvm/temurin-25-jdk-amd64)" >&2; exit 1; }

format: check-java
	$(MVN) spotless:apply

# JMH stage benchmarks and reference tools on the same machine (not part of `make test`).
# `make bench BENCH="decode redo pageserver safekeeper pgbench durability basebackup history"`
# picks sections (default: all); `history` is issue 11's (about 45 minutes), one part of it with
# `history-storage`, `history-getpage`, `history-basebackup` or `history-ingest`.
# `BENCH=basebackup-speed` (only when named) splits the basebackup of a compacted database into its
# parts (in-process generation, libpq, the CLI's fetch, compute start); see BasebackupSpeedBench.
# `BENCH=remote-upload` (only when named): issue 12's upload MB/s against the SDK's putObject of
# the same layer files, on s3proxy; see RemoteUploadBench. `BENCH=remote-attach` (only when named):
# issue 12's attach of a 1 GB tenant on an emptied pageserver, the first query and a full scan on
# it, and GetPage latency with a layer download (s3proxy); see RemoteAttachBench.
# `BENCH=lazy-start` and `BENCH=lazy-speed` (only when named) are issue 13's lazy-compute start
# time (pgbench scale 1 vs 100) and speed (lazy vs full vs vanilla, cold scan, GetPage over the
# wire); see LazyComputeBench. `BENCH=lazy-scan` (only when named): the cold sequential scan alone
# (about 2 minutes; see LazyScanBench).
# BENCH_OPTS passes -D settings to the benchmark's JVM.
# Prints a Markdown table; docs/benchmarks.md records the latest one with its method.
bench: deps check-java
	$(MVN) -q -DskipTests -pl integration -am package dependency:build-classpath \
	  -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=test
	$(JAVA_HOME)/bin/java --enable-native-access=ALL-UNNAMED -Xmx4g -Dzenith.project.root=$(CURDIR) $(BENCH_OPTS) \
	  -cp integration/target/test-classes:integration/target/classes:$$(cat integration/target/classpath.txt) \
	  io.zenith.it.bench.BenchMain $(BENCH)

clean:
	$(MVN) -q clean
