#!/usr/bin/env bash
# Runs the randomized storage-crash loop for longer soaks: scripts/crash-soak.sh ITERATIONS | DURATION (e.g. 500, 30m, 2h).
# CONVERGE_CRASH_SEED=N replays a run (the seed is printed at its start). Needs a Release build (./test.sh does one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arg="${1:?usage: crash-soak.sh ITERATIONS|DURATION (e.g. 200, 45m, 2h)}"
case "$arg" in
  *h) export CONVERGE_CRASH_SECONDS=$(( ${arg%h} * 3600 )); export CONVERGE_CRASH_ITERATIONS=1000000 ;;
  *m) export CONVERGE_CRASH_SECONDS=$(( ${arg%m} * 60 )); export CONVERGE_CRASH_ITERATIONS=1000000 ;;
  *s) export CONVERGE_CRASH_SECONDS=${arg%s}; export CONVERGE_CRASH_ITERATIONS=1000000 ;;
  *[!0-9]*|'') echo "crash-soak.sh: '$arg' is neither a count nor a duration like 30m" >&2; exit 2 ;;
  *) export CONVERGE_CRASH_ITERATIONS="$arg" ;;
esac
cd "$root"
dotnet build Tests/Tests.csproj -c Release -nologo -v q -clp:ErrorsOnly
exec dotnet test Tests/Tests.csproj -c Release --no-build --nologo --filter "Category=CrashSoak" --logger "console;verbosity=detailed"
