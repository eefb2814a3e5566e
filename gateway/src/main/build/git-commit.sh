#!/bin/sh
# Writes "commit=<12 hex digits>" (or "commit=unknown") to $2: the git commit of the project at $1,
# for `zenith --version`. Run by gateway/pom.xml (exec-maven-plugin) at generate-resources.
# "unknown" when git is missing, $1 is not a git work tree (a source tarball), or the work tree git
# finds is another one (a tarball unpacked inside some other repository).
project=$(cd "$1" && pwd -P)
commit=
top=$(git -C "$project" rev-parse --show-toplevel 2>/dev/null) || top=
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$project" ]; then
  commit=$(git -C "$project" rev-parse --short=12 HEAD 2>/dev/null) || commit=
fi
mkdir -p "$(dirname "$2")"
printf '# Written by gateway/src/main/build/git-commit.sh at build time.\ncommit=%s\n' \
  "${commit:-unknown}" > "$2.tmp" && mv "$2.tmp" "$2"
