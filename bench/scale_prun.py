#!/usr/bin/env python3
"""prun at 1,000, 3,000 and 10,000 hosts from one process, against bssh and
parallel-ssh, in one run.

One fleet of real sshd hosts (bench/testfleet.sh: 16 addresses per sshd,
OpenSSH's most) is
brought up at the largest size; each size runs `true` on the first N hosts
with parallelism 1000 (-p 1000; bssh --parallel 1000). Per tool and size:
wall, client CPU (whole process tree) and its milliseconds per host, client
peak memory, the sshd CPU (the sessions and their masters' accepts) and the
machine's total busy CPU (all of it: client, sshd, the kernel's network
time). prun runs --runs times (medians); the peers run once at 10,000
hosts, where a run of parallel-ssh takes minutes. At the largest size
prun also runs with --json and with -o DIR, checked for every host.

Runs the `profiling` build (the release build's code, with symbols for
perf). Needs root and cgroup v1 (cpuacct, memory).

    bench/scale_prun.py [--hosts 1000 3000 10000] [--runs 3] [--peer-runs 1]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from compare_prun import Group, bssh_setup, sshd_pids, CORES, HERE, ROOT, USER

FLEET = os.path.join(ROOT, "target/profiling/fleet")
PORT = 2450
PARALLEL = "1000"


def busy_cpu_seconds():
    """All cores' busy time so far (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def fleet_up(directory, hosts):
    subprocess.run([f"{HERE}/testfleet.sh", "up", directory, str(hosts), "--port", str(PORT),
                    "--net", "201", "--user", USER], check=True)
    os.chmod(directory, 0o755)
    bssh_setup(directory)


def first_hosts(directory, hosts):
    """A hosts file of the first `hosts` hosts, and bssh's configuration
    naming them as a cluster (a -H list of 10,000 hosts is longer than
    one argument may be, and bssh refuses -H ^FILE)."""
    with open(f"{directory}/hosts") as f:
        lines = [line for line in f if line.strip()][:hosts]
    path = f"{directory}/hosts-{hosts}"
    with open(path, "w") as f:
        f.writelines(lines)
    config = f"{directory}/bssh-{hosts}.yaml"
    with open(config, "w") as f:
        f.write("clusters:\n  fleet:\n    nodes:\n")
        f.writelines(f"      - {USER}@{line.strip()}\n" for line in lines)
    return path, config


def commands(directory, hosts):
    hosts_file, bssh_config = first_hosts(directory, hosts)
    ssh_opts = (f"-i {directory}/id_ed25519 -o UserKnownHostsFile={directory}/known_hosts "
                f"-o StrictHostKeyChecking=yes -o BatchMode=yes")
    prun = [FLEET, "run", "-h", hosts_file, "-p", PARALLEL, "-t", "0", "-l", USER, "-F", "none",
            "--identity", f"{directory}/id_ed25519",
            "-O", f"UserKnownHostsFile={directory}/known_hosts"]
    return {
        "prun": (prun + ["true"], {}, None),
        "bssh": (["bssh", "--config", bssh_config, "-C", "fleet", "-i", f"{directory}/id_ed25519", "--parallel", PARALLEL,
                  "--strict-host-key-checking", "yes", "true"],
                 {"HOME": f"{directory}/bssh-home", "NO_COLOR": "1"}, None),
        "parallel-ssh": (["parallel-ssh", "-h", hosts_file, "-p", PARALLEL, "-t", "0", "-l", USER,
                          "-x", ssh_opts, "true"], {}, None),
        "prun --json": (prun + ["--json", "true"], {}, "json"),
        "prun -o DIR": (prun + ["-o", f"{directory}/out", "true"], {}, "files"),
    }


def measure(argv, env, group, sshd_group, hosts, check, directory):
    group.reset()
    sshd_group.reset()
    shutil.rmtree(f"{directory}/out", ignore_errors=True)
    busy = busy_cpu_seconds()
    start = time.monotonic()
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(argv, env=dict(os.environ, **env), stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=subprocess.PIPE,
                                preexec_fn=lambda: group.add(os.getpid()))
        _, stderr = proc.communicate()
        wall = time.monotonic() - start
        stdout.seek(0)
        output = stdout.read()
    time.sleep(1.0)  # let every sshd session exit, so its CPU is counted
    machine = busy_cpu_seconds() - busy
    if proc.returncode != 0:
        said = (f"{' '.join(argv[:3])} on {hosts} hosts failed with {proc.returncode}:\n"
                f"{output.decode(errors='replace')[-1500:]}{stderr.decode(errors='replace')[-1500:]}")
        if "fleet" in argv[0]:
            sys.exit(said)
        print(said, file=sys.stderr)  # a peer that fails is reported, not measured
        return None
    verify(check, output, directory, hosts)
    return {"wall": wall, "cpu": group.cpu_seconds(), "rss": group.peak_mib(),
            "sshd": sshd_group.cpu_seconds(), "machine": machine}


def verify(check, output, directory, hosts):
    """--json gives one object per host, each exit 0; -o one file per host."""
    if check == "json":
        records = [json.loads(line) for line in output.splitlines() if line.strip()]
        ok = [r for r in records if r.get("exit_code") == 0 or r.get("status") == "success"]
        if len(ok) < hosts:
            sys.exit(f"--json: {len(ok)} of {hosts} hosts reported success")
    if check == "files":
        found = len(os.listdir(f"{directory}/out"))
        if found != hosts:
            sys.exit(f"-o: {found} files for {hosts} hosts")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-runs", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale_prun: needs root (sshd, cgroups, useradd)")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["cargo", "build", "--profile", "profiling", "--bin", "fleet"], cwd=ROOT,
                   check=True)
    directory = tempfile.mkdtemp(prefix="fleet-scale-")
    largest = max(args.hosts)
    fleet_up(directory, largest)
    sshd_group = Group("fleetscale-sshd")
    for pid in sshd_pids(directory):
        sshd_group.add(pid)
    try:
        for hosts in sorted(args.hosts):
            tools = commands(directory, hosts)
            results = {}
            for run in range(args.runs):
                for tool, (argv, env, check) in tools.items():
                    extra = tool.startswith("prun ") and hosts != largest
                    peer_done = not tool.startswith("prun") and run >= args.peer_runs
                    once = tool.startswith("prun ") and run >= 1
                    if extra or peer_done or once:
                        continue
                    group = Group(f"fleetscale-{tool.replace(' ', '_').replace('/', '')}")
                    measured = measure(argv, env, group, sshd_group, hosts, check, directory)
                    if measured:
                        results.setdefault(tool, []).append(measured)
            report(hosts, results)
    finally:
        subprocess.run([f"{HERE}/testfleet.sh", "down", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


def report(hosts, results):
    print(f"\n## {hosts} hosts, `true`, parallelism {PARALLEL}, {CORES} cores "
          "(medians; runs per tool in brackets)\n")
    print("| tool | wall s | client CPU s | ms/host | peak MiB | sshd CPU s | sshd floor s "
          "| machine CPU s | machine floor s |")
    print("|---|---|---|---|---|---|---|---|---|")
    medians = {}
    for tool, runs in results.items():
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        medians[tool] = m
        print(f"| {tool} [{len(runs)}] | {m['wall']:.2f} | {m['cpu']:.2f} | "
              f"{1000 * m['cpu'] / hosts:.3f} | {m['rss']:.1f} | {m['sshd']:.2f} | "
              f"{m['sshd'] / CORES:.2f} | {m['machine']:.2f} | "
              f"{(m['machine'] - m['cpu']) / CORES:.2f} |")
    p = medians["prun"]
    for tool in ("bssh", "parallel-ssh"):
        if tool in medians:
            m = medians[tool]
            print(f"\nprun / {tool}: wall {p['wall'] / m['wall']:.2f}x, client CPU "
                  f"{p['cpu'] / m['cpu']:.3f}x, memory {p['rss'] / m['rss']:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
