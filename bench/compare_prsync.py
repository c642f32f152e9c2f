#!/usr/bin/env python3
"""prsync against Debian's parallel-rsync, and pcp -r of the same tree, in the same run.

A tree of 2,000 files (50 MB, incompressible, in 40 directories) goes to
N fleet-lab hosts (each with a filesystem of its own, on a tmpfs so that
this measures the tools, not the disk): a first sync into an empty
directory, then a re-sync after 1% of the files changed. pcp -r sends the
same tree whole (its first-sync baseline). Each tool runs at parallelism
N; medians of --runs runs, the tools interleaved within each run. Client
CPU and peak memory are the tool's whole process tree (ssh and rsync
children included), from a cgroup of its own. Needs root.

    bench/compare_prsync.py [--hosts 100] [--runs 3]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_prun import CORES, ROOT, Group, prepare  # noqa: E402

LAB = os.path.join(ROOT, "target/release/fleet-lab")
FILES = 2000
TOTAL = 50_000_000
CHANGED = FILES // 100


def make_tree(root):
    """2,000 files of random sizes adding up to about 50 MB."""
    rng = random.Random(15)
    weights = [rng.random() for _ in range(FILES)]
    scale = TOTAL / sum(weights)
    for index, weight in enumerate(weights):
        directory = os.path.join(root, f"d{index % 40:02}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{index:04}"), "wb") as f:
            f.write(os.urandom(max(1, int(weight * scale))))


def change_some(root, generation):
    """Rewrites 1% of the files (same names, new content and time)."""
    for index in range(0, FILES, FILES // CHANGED):
        path = os.path.join(root, f"d{index % 40:02}", f"f{index:04}")
        with open(path, "r+b") as f:
            f.write(f"generation {generation}\n".encode())


def lab_processes(directory):
    """The lab's supervisor, hosts and their sshd: every process naming its directory."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if directory.encode() in f.read():
                    yield int(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue


def measure(argv, group, quiet_ok, hosts_group):
    group.reset()
    hosts_group.reset()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: group.add(os.getpid()))
        start = os.times().elapsed
        proc.wait()
        wall = os.times().elapsed - start
        out.seek(0)
        said = out.read().decode(errors="replace")
    if proc.returncode != 0 or not quiet_ok(said):
        sys.exit(f"{' '.join(argv[:3])} ... failed ({proc.returncode}):\n{said[-3000:]}")
    time.sleep(1.0)  # let every session on the hosts end, so its CPU is counted
    return {"wall": wall, "cpu": group.cpu_seconds(), "rss": group.peak_mib(),
            "hosts": hosts_group.cpu_seconds()}


def bench(hosts, runs):
    work = tempfile.mkdtemp(prefix="fleetbench-sync-", dir="/var/tmp")
    lab = f"{work}/lab"
    tree = f"{work}/tree"
    os.makedirs(lab)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=14g", "fleetbench-sync", lab], check=True)
    make_tree(tree)
    subprocess.run([LAB, "--dir", lab, "up", str(hosts), "--net", "197", "--port", "2600"],
                   check=True, stdout=subprocess.DEVNULL)
    var_logs = [f"{lab}/hosts.d/lab-{i + 1:03}/root/var/log" for i in range(hosts)]
    # The hosts' CPU (sshd, shells, what the tools run there): on a real
    # fleet each host spends it on its own cores; here all share two.
    hosts_group = Group("fleetbench-hosts")
    for pid in lab_processes(lab):
        hosts_group.add(pid)
    ssh = f"-i {lab}/id_ed25519 -o UserKnownHostsFile={lab}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
    ours = ["-F", "none", "-h", f"{lab}/hosts", "-p", str(hosts), "-t", "0", "--identity", f"{lab}/id_ed25519",
            "-O", f"UserKnownHostsFile={lab}/known_hosts"]
    release = os.path.join(ROOT, "target/release")
    tools = {
        "prsync -a": [f"{release}/fleet", "sync", *ours, "-a", f"{tree}/", "/var/log/dest"],
        "parallel-rsync -a": ["parallel-rsync", "-h", f"{lab}/hosts", "-p", str(hosts), "-t", "0", "-l", "root",
                              "-S", ssh, "-a", f"{tree}/", "/var/log/dest"],
    }
    pcp = [f"{release}/fleet", "cp", *ours, "--max-transfers", str(hosts), "-r", tree, "/var/log/"]
    # What any tool pays per host before it does anything: a login and one command.
    floor = [f"{release}/fleet", "run", *ours, "true"]
    every_host = lambda text: text.count("[SUCCESS]") == hosts  # noqa: E731
    results = {}
    groups = {}

    def run(name, argv):
        group = groups.setdefault(name, Group("fleetbench-" + name.split()[0]))
        results.setdefault(name, []).append(measure(argv, group, every_host, hosts_group))

    def clean(name):
        for var_log in var_logs:
            shutil.rmtree(os.path.join(var_log, name), ignore_errors=True)

    try:
        for generation in range(runs):
            for tool, argv in tools.items():
                clean("dest")
                run(f"{tool} first", argv)
                change_some(tree, f"{generation}-{tool}")
                run(f"{tool} re-sync", argv)
                clean("dest")
            run("pcp -r", pcp)
            clean("tree")
            run("floor: prun true", floor)
    finally:
        subprocess.run([LAB, "--dir", lab, "down"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["umount", lab], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in results.items()}


def report(hosts, medians, runs):
    print(f"\n## {FILES} files, {TOTAL // 10**6} MB to {hosts} hosts, parallelism {hosts}, "
          f"median of {runs} runs, {CORES} cores\n")
    print("| run | wall s | client CPU s | client peak MiB | hosts' CPU s |")
    print("|---|---|---|---|---|")
    for name, m in medians.items():
        print(f"| {name} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss']:.1f} | {m['hosts']:.2f} |")
    ours, theirs = "prsync -a", "parallel-rsync -a"
    first, again = medians[f"{ours} first"], medians[f"{ours} re-sync"]
    print(f"\nprsync first sync / pcp -r: {first['wall'] / medians['pcp -r']['wall']:.2f}x (target <= 1.5x)")
    for phase in ("first", "re-sync"):
        o, t = medians[f"{ours} {phase}"], medians[f"{theirs} {phase}"]
        print(f"{phase}: parallel-rsync / prsync wall {t['wall'] / o['wall']:.2f}x, "
              f"client CPU {t['cpu'] / o['cpu']:.2f}x, peak memory {t['rss'] / o['rss']:.2f}x")
    print(f"re-sync target: parallel-rsync / prsync >= 5x (prsync re-sync {again['wall']:.2f} s)")
    floor = medians["floor: prun true"]["wall"]
    print(f"above the floor (a login and `true` on every host, {floor:.2f} s): "
          f"prsync re-sync {again['wall'] - floor:.2f} s, "
          f"parallel-rsync re-sync {medians[f'{theirs} re-sync']['wall'] - floor:.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare("compare_prsync")
    if not shutil.which("parallel-rsync") or not shutil.which("rsync"):
        sys.exit("compare_prsync: needs parallel-rsync (Debian's pssh) and rsync")
    report(args.hosts, bench(args.hosts, args.runs), args.runs)


if __name__ == "__main__":
    main()
