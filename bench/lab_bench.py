#!/usr/bin/env python3
"""fleet-lab: time of `up` and `down` for N hosts, and the lab's memory per host.

Memory is the sum of PSS (proportional set size: shared pages divided among
their users) over every lab process (supervisor, unshare, init, sshd), read
from /proc/PID/smaps_rollup once all hosts are up. Medians of --runs runs.
Needs root.

    bench/lab_bench.py [--hosts 100 1000] [--runs 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_prun import prepare  # noqa: E402
LAB = os.path.join(ROOT, "target/release/fleet-lab")


def lab_pss_kib(directory):
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if directory.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def timed(argv):
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def bench(hosts, runs):
    directory = f"/var/tmp/fleet-lab-bench-{hosts}"
    ups, downs, memory = [], [], []
    for _ in range(runs):
        ups.append(timed([LAB, "--dir", directory, "up", str(hosts), "--net", "199"]))
        time.sleep(1)
        memory.append(lab_pss_kib(directory) / hosts)
        downs.append(timed([LAB, "--dir", directory, "down"]))
    return statistics.median(ups), statistics.median(downs), statistics.median(memory)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare("lab_bench")
    print(f"| hosts | up s | down s | memory per host (PSS) |  (median of {args.runs})")
    print("|---|---|---|---|")
    for hosts in args.hosts:
        up, down, kib = bench(hosts, args.runs)
        print(f"| {hosts} | {up:.2f} | {down:.2f} | {kib / 1024:.2f} MiB |")


if __name__ == "__main__":
    main()
