#!/usr/bin/env bash
# Makes PostgreSQL 15's regression suite available to RegressionSuiteFidelityTest (`make deps`
# runs it): the SQL, expected files and schedule from Debian's postgresql-15 source package, and
# the C modules the schedule loads (regress.so, plus refint.so and autoinc.so from contrib/spi),
# built with PGXS against the installed server headers. Nothing of PostgreSQL's sources goes into
# the repository.
#
#   fetch-suite.sh <cache dir>      (default: <repo>/.cache/pg-regress, gitignored)
#
# Result: <cache dir>/<source version>/ with suite/ (pg_regress --inputdir), lib/ (--dlpath) and
# suite.properties (source and binary versions, the pg_regress to use), and the symlink
# <cache dir>/current. Nothing is done when current/ already matches the installed binaries.
#
# Source: `apt-get source --download-only postgresql-15=<installed version>`. deb-src entries for
# bookworm and bookworm-security are added (/etc/apt/sources.list.d/zenith-src.sources) when apt
# knows no source of postgresql-15; that one step needs root or sudo. The security mirror may lack
# the source of the newest binaries; the newest source version of 15.x that downloads is used then,
# and recorded (the SQL of a slightly older minor version; tests its newer binaries answer
# differently fail on vanilla PostgreSQL as well, which the test tolerates).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-$(cd "$here/../.." && pwd)/.cache/pg-regress}

if [ -n "${ZENITH_PG_BIN:-}" ]; then
  pg_config=$ZENITH_PG_BIN/pg_config
elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
  pg_config=/usr/lib/postgresql/15/bin/pg_config
else
  pg_config=pg_config
fi
pgxs=$("$pg_config" --pgxs 2>/dev/null) || {
  echo "fetch-suite: $pg_config not found; run \`make deps\` (installs postgresql-server-dev-15)" >&2
  exit 1
}
pg_regress=$(cd "$(dirname "$pgxs")/../test/regress" 2>/dev/null && pwd)/pg_regress
if [ ! -x "$pg_regress" ]; then
  echo "fetch-suite: no pg_regress at $pg_regress (Debian ships it in postgresql-server-dev-15)" >&2
  exit 1
fi
binary_version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
if [ -z "$binary_version" ]; then
  echo "fetch-suite: Debian package postgresql-15 is not installed; run \`make deps\`" >&2
  exit 1
fi

if [ -f "$cache/current/suite.properties" ] &&
  grep -qxF "binary_version=$binary_version" "$cache/current/suite.properties"; then
  exit 0
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else
    echo "fetch-suite: apt knows no source package postgresql-15 and this is not root; run \`make deps\` as root once (it adds deb-src entries)" >&2
    exit 1
  fi
}

source_versions() {
  apt-cache showsrc postgresql-15 2>/dev/null | sed -n 's/^Version: //p' | grep '^15\.' | sort -urV || true
}

if [ -z "$(source_versions)" ] &&
  grep -rqsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "fetch-suite: deb-src entries exist but apt knows no source of postgresql-15: apt-get update"
  as_root apt-get update -q
fi
if [ -z "$(source_versions)" ]; then
  echo "fetch-suite: adding deb-src for bookworm and bookworm-security (/etc/apt/sources.list.d/zenith-src.sources)"
  as_root tee /etc/apt/sources.list.d/zenith-src.sources >/dev/null <<'SOURCES'
# Added by Zenith's `make deps`: PostgreSQL's regression suite comes from the source package.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  as_root apt-get update -q
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The installed version first, then every other 15.x source apt knows, newest first.
candidates=$( (echo "$binary_version"; source_versions | grep -vxF "$binary_version") )
source_version=""
for v in $candidates; do
  echo "fetch-suite: apt-get source --download-only postgresql-15=$v"
  if (cd "$work" && apt-get source -q --download-only "postgresql-15=$v" >"$work/apt.log" 2>&1); then
    source_version=$v
    break
  fi
  grep -E '^(E|W):' "$work/apt.log" | grep -v unsandboxed | head -3 >&2 || true
  rm -f "$work"/postgresql-15_*
done
if [ -z "$source_version" ]; then
  echo "fetch-suite: no source of postgresql-15 15.x could be downloaded" >&2
  exit 1
fi
if [ "$source_version" != "$binary_version" ]; then
  echo "fetch-suite: the source of $binary_version is not downloadable; using $source_version"
fi

orig=$(ls "$work"/postgresql-15_*.orig.tar.*)
upstream=${source_version%%-*}
top=postgresql-$upstream
echo "fetch-suite: extracting src/test/regress and contrib/spi from $(basename "$orig")"
mkdir "$work/src"
tar -xf "$orig" -C "$work/src" --wildcards \
  "$top/src/test/regress/*" "$top/contrib/spi/*"
regress=$work/src/$top/src/test/regress
spi=$work/src/$top/contrib/spi

dest=$work/out
mkdir -p "$dest/suite" "$dest/lib" "$dest/build"
for item in sql expected data input output parallel_schedule serial_schedule resultmap; do
  if [ -e "$regress/$item" ]; then cp -r "$regress/$item" "$dest/suite/"; fi
done

echo "fetch-suite: building regress.so, refint.so, autoinc.so with PGXS"
cp "$regress/regress.c" "$spi/refint.c" "$spi/autoinc.c" "$dest/build/"
make -s -C "$dest/build" -f "$here/Makefile" PG_CONFIG="$pg_config" >"$work/make.log" 2>&1 || {
  cat "$work/make.log" >&2
  exit 1
}
cp "$dest/build"/{regress,refint,autoinc}.so "$dest/lib/"
rm -rf "$dest/build"

cat >"$dest/suite.properties" <<PROPS
# PostgreSQL's regression suite for RegressionSuiteFidelityTest (integration/pg-regress/fetch-suite.sh)
source_version=$source_version
binary_version=$binary_version
pg_regress=$pg_regress
PROPS

rm -rf "${cache:?}/$source_version"
mv "$dest" "$cache/$source_version"
ln -sfn "$source_version" "$cache/current.tmp"
mv -T "$cache/current.tmp" "$cache/current"
echo "fetch-suite: PostgreSQL $source_version regression suite ready in $cache/current (binaries $binary_version)"
