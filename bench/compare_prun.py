#!/usr/bin/env python3
"""prun against parallel-ssh, pdsh (-R ssh), clush and bssh, in the same run.

Brings up N real sshd hosts with bench/testfleet.sh (logins as an ordinary
user with a plain /bin/sh), runs `true` on all of them with each tool at
parallelism N, and prints per tool the medians of wall seconds, client CPU
seconds (the whole process tree, ssh children included), client peak
memory (the whole tree) and sshd CPU seconds, then prun's ratios.

Measured with cgroup v1 controllers (cpuacct, memory): each tool runs in a
cgroup of its own, and the sshd masters in another, which their per-session
children inherit. Needs root.

    bench/compare_prun.py [--hosts 100 1000] [--runs 3]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CGROUP = "/sys/fs/cgroup"
USER = "fleetbench"
CORES = os.cpu_count() or 1


class Group:
    """A cpuacct + memory cgroup pair: CPU and peak memory of a process tree."""

    def __init__(self, name):
        self.cpu = f"{CGROUP}/cpuacct/{name}"
        self.mem = f"{CGROUP}/memory/{name}"
        for path in (self.cpu, self.mem):
            os.makedirs(path, exist_ok=True)

    def add(self, pid):
        for path in (self.cpu, self.mem):
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(str(pid))

    def reset(self):
        with open(f"{self.cpu}/cpuacct.usage", "w") as f:
            f.write("0")
        with open(f"{self.mem}/memory.max_usage_in_bytes", "w") as f:
            f.write("0")

    def cpu_seconds(self):
        with open(f"{self.cpu}/cpuacct.usage") as f:
            return int(f.read()) / 1e9

    def peak_mib(self):
        with open(f"{self.mem}/memory.max_usage_in_bytes") as f:
            return int(f.read()) / 2**20


def fleet_up(directory, hosts, port):
    subprocess.run([f"{HERE}/testfleet.sh", "up", directory, str(hosts), "--port", str(port),
                    "--net", "200", "--user", USER], check=True)
    os.chmod(directory, 0o755)
    with open(f"{directory}/hosts") as f:
        addresses = [line.split(":")[0] for line in f if line.strip()]
    with open(f"{directory}/addrs", "w") as f:
        f.write("\n".join(addresses) + "\n")
    bssh_setup(directory)


def bssh_setup(directory):
    """bssh 2.2 takes no -l for a host list, no hosts file (`-H ^FILE` is
    refused) and reads only ~/.ssh/known_hosts: it gets user@host entries and
    a HOME of its own holding the fleet's keys."""
    with open(f"{directory}/hosts") as f, open(f"{directory}/bssh-hosts", "w") as out:
        out.writelines(f"{USER}@{line}" for line in f if line.strip())
    os.makedirs(f"{directory}/bssh-home/.ssh", exist_ok=True)
    shutil.copy(f"{directory}/known_hosts", f"{directory}/bssh-home/.ssh/known_hosts")


def bssh_command(directory, par, *args):
    """bssh over the whole fleet, checking host keys, as the others do."""
    with open(f"{directory}/bssh-hosts") as f:
        hosts = ",".join(line.strip() for line in f)
    return (["bssh", "-H", hosts, "-i", f"{directory}/id_ed25519",
             "--parallel", par, "--strict-host-key-checking", "yes", *args],
            {"HOME": f"{directory}/bssh-home", "NO_COLOR": "1"})


def sshd_pids(directory):
    pids = []
    for name in os.listdir(directory):
        if name.startswith("sshd-") and name.endswith(".pid"):
            with open(os.path.join(directory, name)) as f:
                pids.append(int(f.read()))
    return pids


def commands(directory, hosts, port):
    ssh_opts = (f"-i {directory}/id_ed25519 -o UserKnownHostsFile={directory}/known_hosts "
                f"-o StrictHostKeyChecking=yes -o BatchMode=yes")
    par = str(hosts)
    fleet = os.path.join(ROOT, "target/release/fleet")
    return {
        "prun": ([fleet, "run", "-h", f"{directory}/hosts", "-p", par, "-t", "0", "-l", USER,
                  "--identity", f"{directory}/id_ed25519",
                  "-O", f"UserKnownHostsFile={directory}/known_hosts", "true"], {}),
        "parallel-ssh": (["parallel-ssh", "-h", f"{directory}/hosts", "-p", par, "-t", "0",
                          "-l", USER, "-x", ssh_opts, "true"], {}),
        "pdsh": (["pdsh", "-R", "ssh", "-f", par, "-l", USER, "-w", f"^{directory}/addrs", "true"],
                 {"PDSH_SSH_ARGS": f"-a -x -l%u -p {port} {ssh_opts} %h"}),
        "clush": (["clush", "-f", par, "-l", USER, "-o", f"-p {port} {ssh_opts}",
                   "--hostfile", f"{directory}/addrs", "true"], {}),
        "bssh": bssh_command(directory, par, "true"),
    }


def measure(argv, extra_env, tool_group, sshd_group, stdin=subprocess.DEVNULL):
    env = dict(os.environ, **extra_env)
    tool_group.reset()
    sshd_group.reset()
    start = time.monotonic()
    # stdout goes to a file, not a pipe to this process: reading it would
    # cost CPU in the measurement; some tools (bssh) say why they failed there.
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                preexec_fn=lambda: tool_group.add(os.getpid()))
        _, stderr = proc.communicate()
        wall = time.monotonic() - start
        if proc.returncode != 0:
            stdout.seek(0)
            said = stdout.read().decode(errors="replace")[-2000:] + stderr.decode(errors="replace")[-2000:]
            sys.exit(f"{' '.join(argv[:4])} ... failed with {proc.returncode}:\n{said}")
    time.sleep(1.0)  # let every sshd session exit, so its CPU is counted
    return {"wall": wall, "cpu": tool_group.cpu_seconds(), "rss": tool_group.peak_mib(),
            "sshd": sshd_group.cpu_seconds()}


def bench(hosts, runs):
    port = 2400
    directory = tempfile.mkdtemp(prefix=f"fleetbench-{hosts}-")
    fleet_up(directory, hosts, port)
    sshd_group = Group("fleetbench-sshd")
    for pid in sshd_pids(directory):
        sshd_group.add(pid)
    groups = {}
    results = {}
    try:
        tools = commands(directory, hosts, port)
        for run in range(runs):
            # Interleave the tools, so machine noise hits them alike.
            for tool, (argv, env) in tools.items():
                group = groups.setdefault(tool, Group(f"fleetbench-{tool}"))
                results.setdefault(tool, []).append(measure(argv, env, group, sshd_group))
    finally:
        subprocess.run([f"{HERE}/testfleet.sh", "down", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)
    return {tool: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for tool, rs in results.items()}


def report(hosts, medians, runs):
    print(f"\n## {hosts} hosts, `true`, parallelism {hosts}, median of {runs} runs, {CORES} cores\n")
    print("| tool | wall s | client CPU s | client CPU ms/host | client peak MiB | sshd CPU s | sshd floor s |")
    print("|---|---|---|---|---|---|---|")
    for tool, m in medians.items():
        print(f"| {tool} | {m['wall']:.2f} | {m['cpu']:.2f} | {1000 * m['cpu'] / hosts:.2f} | "
              f"{m['rss']:.1f} | {m['sshd']:.2f} | {m['sshd'] / CORES:.2f} |")
    p = medians["prun"]
    print(f"\nprun wall / sshd floor (sshd CPU / cores): {p['wall'] / (p['sshd'] / CORES):.2f}")
    print("\n| prun vs | wall | client CPU | client peak memory |")
    print("|---|---|---|---|")
    for tool, m in medians.items():
        if tool != "prun":
            print(f"| {tool} | {p['wall'] / m['wall']:.2f}x | {p['cpu'] / m['cpu']:.3f}x | {p['rss'] / m['rss']:.3f}x |")


def prepare(name):
    """What every benchmark needs first: root, many open files, a release build."""
    if os.geteuid() != 0:
        sys.exit(f"{name}: needs root (sshd, namespaces, cgroups, useradd)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare("compare_prun")
    for hosts in args.hosts:
        report(hosts, bench(hosts, args.runs), args.runs)


if __name__ == "__main__":
    main()
