#!/usr/bin/env bash
# Where the CPU goes under one fio job: starts a private cluster (its own data directory and ports, beside any
# cluster of yours), runs the job over NBD through compute-1, samples every CPU with perf, and reports the share
# of each silo, of each kind of thread and of each component (log, extents, destage, data channel, controller,
# NBD, cache, Orleans, JIT, GC, kernel work under sockets and files).
#
# usage: scripts/profile.sh [randwrite|randread|seqwrite] [SECONDS] [IODEPTH] [--storage M]
#        defaults: randwrite, 10 s, queue depth 32, 2 storage silos (as ./converge bench)
# Needs root (perf samples every process) and a Release build (./converge builds one). Installs linux-perf and fio
# when missing. Keeps perf.data, the symbolised samples and the report in the directory it prints.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
job=randwrite; seconds=10; depth=32; storage=2
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --storage) storage="${2:?--storage needs a count}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -ge 1 ] && job="${positional[0]}"
[ ${#positional[@]} -ge 2 ] && seconds="${positional[1]}"
[ ${#positional[@]} -ge 3 ] && depth="${positional[2]}"
case "$job" in
  randwrite) rw=randwrite; bs=4k ;;
  randread) rw=randread; bs=4k ;;
  seqwrite) rw=write; bs=1M ;;
  *) echo "profile.sh: job must be randwrite, randread or seqwrite, not '$job'" >&2; exit 2 ;;
esac
number() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || { echo "profile.sh: $1 must be a whole number from $3 to $4, not '$2'" >&2; exit 2; }; }
number SECONDS "$seconds" 1 300
number IODEPTH "$depth" 1 256
number --storage "$storage" 2 6
[ "$(id -u)" = 0 ] || { echo "profile.sh: perf needs root to sample every process" >&2; exit 1; }
for tool in perf:linux-perf fio:fio; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${tool##*:}" >/dev/null
  fi
done

work="$(mktemp -d /tmp/converge-profile.XXXXXX)"
cli=("$root/converge" --data "$work/cluster")
pids=()
cleanup() {
  "${cli[@]}" down >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do rm -f "/tmp/perf-$pid.map"; done
}
trap cleanup EXIT

echo "profile: starting $storage storage + 2 compute silos in $work/cluster"
# Perf maps let perf name JIT-compiled frames; W^X off keeps them valid.
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 "${cli[@]}" up --storage "$storage" --port-offset 4000 >"$work/up.log"
"${cli[@]}" volume create prof --size 1G >/dev/null
status="$("${cli[@]}" status)"
port="$(awk '$1 == "compute-1" { print $NF }' <<<"$status")"
mapfile -t pids < <(awk '$1 ~ /^(storage|compute)-[0-9]+$/ { print $4 }' <<<"$status")
names="$(awk '$1 ~ /^(storage|compute)-[0-9]+$/ { printf "%s=%s ", $4, $1 }' <<<"$status")"
fio_run() {
  fio --name=prof --ioengine=nbd --uri="nbd://127.0.0.1:$port/prof" --size=256M --output-format=json "$@"
}
echo "profile: warm-up, 20 s of 4 KiB random writes at queue depth 32 (the JIT compiles the hot paths)"
fio_run --rw=randwrite --bs=4k --iodepth=32 --time_based --runtime=20 --output="$work/warmup.json" >/dev/null
if [ "$job" = randread ]; then
  fio_run --rw=write --bs=1M --iodepth=8 --output="$work/prefill.json" >/dev/null
fi

echo "profile: $job, bs $bs, queue depth $depth: $((seconds + 4)) s of fio, $seconds s sampled at 499 Hz on every CPU"
fio_run --rw="$rw" --bs="$bs" --iodepth="$depth" --time_based --runtime=$((seconds + 4)) --output="$work/fio.json" >/dev/null &
fio_pid=$!
sleep 2
perf record -q -F 499 -g -a -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
wait "$fio_pid"
perf script -i "$work/perf.data" -F comm,pid,tid,ip,sym,dso 2>/dev/null >"$work/samples.txt"
python3 "$root/scripts/profile-report.py" "$work/samples.txt" "$work/fio.json" $names | tee "$work/report.txt"
echo "profile: perf.data, samples.txt and report.txt are in $work"
