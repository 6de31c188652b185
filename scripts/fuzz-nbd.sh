#!/usr/bin/env bash
# Fuzzes the NBD server's handshake and request parser with afl-fuzz through SharpFuzz.
#   scripts/fuzz-nbd.sh DURATION_SECONDS [OUT_DIR]
# Installs afl++ (Debian) and the SharpFuzz CLI (local dotnet tool) if missing, builds the harness, instruments
# Nbd.dll (the server assembly), seeds a corpus and runs afl-fuzz for DURATION_SECONDS. Findings land in OUT_DIR/findings;
# replay them with: dotnet OUT_DIR/bin/Nbd.Fuzz.dll replay OUT_DIR/findings/default/crashes/id*
set -euo pipefail

duration="${1:?usage: fuzz-nbd.sh DURATION_SECONDS [OUT_DIR]}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${2:-$root/.fuzz/nbd}"

if ! command -v afl-fuzz >/dev/null; then
  apt-get update -qq && apt-get install -y -qq afl++ >/dev/null
fi

cd "$root"
if [ ! -f dotnet-tools.json ] && [ ! -f .config/dotnet-tools.json ]; then
  dotnet new tool-manifest >/dev/null
fi
if ! dotnet tool list --local | grep -qi sharpfuzz.commandline; then
  dotnet tool install --local SharpFuzz.CommandLine --version 2.3.0 >/dev/null
fi
dotnet tool restore >/dev/null

rm -rf "$out/bin"
mkdir -p "$out"
dotnet build Fuzz/Nbd.Fuzz/Nbd.Fuzz.csproj -c Release -o "$out/bin" -nologo -v q
dotnet tool run sharpfuzz "$out/bin/Nbd.dll"

rm -rf "$out/in"
dotnet "$out/bin/Nbd.Fuzz.dll" seeds "$out/in"

# afl++ checks the binary for its own instrumentation, which a managed program cannot have; SharpFuzz reports
# coverage through the shared memory instead. Crash detection does not need a core pattern here.
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=30000
resume=()
if [ -d "$out/findings/default/queue" ]; then
  resume=(-i -)
else
  resume=(-i "$out/in")
fi
timeout --kill-after=30 "$((duration + 60))" \
  afl-fuzz "${resume[@]}" -o "$out/findings" -V "$duration" -t 10000 -m none -- dotnet "$out/bin/Nbd.Fuzz.dll" || true

stats="$out/findings/default/fuzzer_stats"
if [ -f "$stats" ]; then
  grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg|run_time)' "$stats"
fi
crashes=$(find "$out/findings/default/crashes" -name 'id*' 2>/dev/null | wc -l)
hangs=$(find "$out/findings/default/hangs" -name 'id*' 2>/dev/null | wc -l)
echo "crashes: $crashes, hangs: $hangs"
[ "$crashes" -eq 0 ]
