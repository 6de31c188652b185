#!/usr/bin/env python3
"""Summarises `perf script -F comm,pid,tid,ip,sym,dso` output of a profiled cluster (see scripts/profile.sh).

usage: profile-report.py SAMPLES FIO_JSON PID=NODE...

Each sample is charged to a process (the silos by node name, fio, idle, other) and, within the silos, to a component:
the innermost frame of the stack that belongs to a known part of Converge, Orleans or the runtime. Kernel and socket
time is charged to the part above it that asked for it, or to the runtime, or to its system call when nothing known is
above it.
"""
import collections
import json
import os
import re
import sys

SAMPLE_HZ = 499

# Parts of Converge, Orleans and metrics: the innermost frame of one of these that a sample's stack holds decides its
# component, so that kernel and socket work is charged to whoever asked for it (a log fdatasync to the log, a reply's
# send to the data channel, a message's to Orleans).
OWNERS = [
    ("Converge.Grains.Log.", "log"),
    ("Converge.Grains.Segments.", "log"),
    ("Converge.Grains.Extents.", "extents"),
    ("Converge.Grains.Destage.", "destage"),
    ("Converge.Grains.DataChannel.", "data channel"),
    ("Converge.Grains.Controller.", "volume controller"),
    ("Converge.Grains.Cache.", "cache"),
    ("Converge.Nbd.", "NBD"),
    ("Converge.SiloCompute.Nbd.", "NBD"),
    ("Converge.Log.", "record codec"),
    ("OpenTelemetry", "metrics"),
    ("System.Diagnostics.Metrics", "metrics"),
    ("Orleans.Serialization", "Orleans serialization"),
    ("OrleansCodeGen", "Orleans serialization"),
    ("Orleans.", "Orleans runtime"),
]

# Without an owner above it: the runtime's own work.
RUNTIME = [
    ("libclrjit.so", "JIT"),
    ("System.Net.Sockets", ".NET sockets (no owner on the stack)"),
    ("System.IO.Pipelines", ".NET sockets (no owner on the stack)"),
    ("PortableThreadPool", "thread pool"),
    ("ThreadPoolWorkQueue", "thread pool"),
    ("LowLevelLifoSemaphore", "thread pool"),
    ("gc_heap", "GC"),
    ("GCHeap", "GC"),
]
SYSCALL = re.compile(r"__x64_sys_(\w+)|__(?:se|do)_sys_(\w+)")


def component(frames):
    for table in (OWNERS, RUNTIME):
        for frame in frames:
            for needle, name in table:
                if needle in frame:
                    return name
    for frame in frames:
        match = SYSCALL.search(frame)
        if match:
            return "kernel: " + (match.group(1) or match.group(2))
    return "other"


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    samples_path, fio_path = argv[1], argv[2]
    nodes = {}
    for pair in argv[3:]:
        pid, _, name = pair.partition("=")
        if not pid.isdigit() or not name:
            print(f"profile-report.py: '{pair}' is not PID=NODE", file=sys.stderr)
            return 2
        nodes[pid] = name

    by_process = collections.Counter()
    by_role = collections.defaultdict(collections.Counter)
    total = 0
    with open(samples_path, encoding="utf-8", errors="replace") as f:
        blocks = f.read().split("\n\n")
    for block in blocks:
        lines = [l for l in block.strip("\n").split("\n") if l.strip()]
        if not lines:
            continue
        head = re.match(r"\s*(.*?)\s+(\d+)/(\d+)\s*$", lines[0])
        if not head:
            continue
        comm, pid = head.group(1), head.group(2)
        frames = [l.strip() for l in lines[1:]]
        total += 1
        if pid in nodes:
            node = nodes[pid]
            by_process[node] += 1
            by_role[node.split("-")[0]][component(frames)] += 1
        elif pid == "0":
            by_process["idle"] += 1
        elif comm.startswith("fio"):
            by_process["fio"] += 1
        else:
            by_process["other processes"] += 1
    if total == 0:
        print("profile-report.py: no samples", file=sys.stderr)
        return 1

    with open(fio_path, encoding="utf-8") as f:
        text = f.read()
    report = json.loads(text[text.index("{"):])
    job = report["jobs"][0]
    direction = "write" if job["write"]["io_bytes"] > 0 else "read"
    iops = job[direction]["iops"]
    print(f"fio: {iops:,.0f} IOPS, {job[direction]['bw_bytes'] / 1e6:,.1f} MB/s ({direction}), "
          f"p50 {job[direction]['clat_ns']['percentile']['50.000000'] / 1000:,.0f} us")
    seconds = total / SAMPLE_HZ / (os.cpu_count() or 1)
    print(f"{total} samples on every CPU over about {seconds:.0f} s")
    print()
    print("CPU by process (share of all samples):")
    for name, count in by_process.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    for role, counter in sorted(by_role.items()):
        role_total = sum(counter.values())
        cpu_us_per_io = role_total / SAMPLE_HZ / (iops * seconds) * 1e6 if iops > 0 else float("nan")
        print()
        print(f"{role} silos: {100 * role_total / total:.1f}% of all samples, about {cpu_us_per_io:,.0f} us of CPU per I/O; by component:")
        for name, count in counter.most_common(14):
            print(f"  {100 * count / role_total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
