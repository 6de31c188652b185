#!/usr/bin/env bash
# Installs what the tests need (Debian packages, only when missing), builds, runs every test, and ends with
# a line "N passed, N failed". Tests start and stop their own silo processes and PostgreSQL servers.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

log() { echo "test.sh: $*" >&2; }

# Debian packages: real NBD clients and servers, fio, PostgreSQL, fault injection.
need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have fio || need_pkgs+=(fio)
have qemu-img || need_pkgs+=(qemu-utils)
have nbdinfo || need_pkgs+=(libnbd-bin)
have nbdkit || need_pkgs+=(nbdkit)
have nbdsh || need_pkgs+=(python3-libnbd)  # libnbd for /usr/bin/python3 (BlockStatus test)
have strace || need_pkgs+=(strace)
have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to install packages: ${need_pkgs[*]}"; echo "0 passed, 1 failed"; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || {
    log "apt-get install failed"; echo "0 passed, 1 failed"; exit 1; }
fi

log "building (Release)"
if ! dotnet build Cluster.sln -c Release -nologo -v q -clp:ErrorsOnly; then
  log "build failed"; echo "0 passed, 1 failed"; exit 1
fi
mkdir -p Client/bin/Release && touch Client/bin/Release/.converge-build-stamp

# This run's temporary files (test clusters, PostgreSQL data) live under one private directory, so the cleanup below
# can never touch another run's clusters on the same machine.
run_tmp="$(mktemp -d /tmp/converge-run-XXXXXX)"
chmod 755 "$run_tmp"  # the private PostgreSQL runs as its own user and must reach its data directory
export TMPDIR="$run_tmp"
cleanup() {
  # Belt and braces: tests kill what they start by pid; anything left from this run's test clusters goes too.
  pkill -9 -f -- "--data $run_tmp/" 2>/dev/null || true
  [ -n "${CONVERGE_KEEP_TEST_CLUSTERS:-}" ] || rm -rf "$run_tmp"
}
trap cleanup EXIT
[ -n "${CONVERGE_KEEP_TEST_CLUSTERS:-}" ] && log "test clusters are kept in $run_tmp"

results="$root/TestResults"
rm -rf "$results"
log "running tests"
dotnet test Tests/Tests.csproj -c Release --no-build --nologo \
  --logger "console;verbosity=normal" --logger "trx;LogFileName=tests.trx" --results-directory "$results" \
  ${TEST_FILTER:+--filter "$TEST_FILTER"} 2>&1 | tee "$results.log"
status=${PIPESTATUS[0]}

trx="$results/tests.trx"
if [ -f "$trx" ]; then
  passed=$(grep -o 'passed="[0-9]*"' "$trx" | head -1 | grep -o '[0-9]*')
  failed=$(grep -o 'failed="[0-9]*"' "$trx" | head -1 | grep -o '[0-9]*')
  total=$(grep -o 'total="[0-9]*"' "$trx" | head -1 | grep -o '[0-9]*')
  executed=$(grep -o 'executed="[0-9]*"' "$trx" | head -1 | grep -o '[0-9]*')
  skipped=$(( ${total:-0} - ${executed:-0} ))
else
  passed=0; failed=1; skipped=0
fi
if [ "$status" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then failed=1; fi
rm -f "$results.log"
if [ -f "$trx" ] && [ "${failed:-0}" -gt 0 ]; then
  # The tail of a long run is what a reader sees first: name each failed test and the start of its message there.
  python3 - "$trx" <<'PY' || true
import sys, xml.etree.ElementTree as et
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
root = et.parse(sys.argv[1]).getroot()
for r in root.iterfind(".//t:UnitTestResult", ns):
    if r.get("outcome") != "Failed":
        continue
    msg = r.findtext(".//t:Message", default="", namespaces=ns).strip().replace("\n", " | ")
    print(f"FAILED {r.get('testName')} ({r.get('duration')}): {msg[:600]}")
PY
fi
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped} skipped"
[ "$status" -eq 0 ] && [ "${failed:-0}" -eq 0 ]
