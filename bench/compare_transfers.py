#!/usr/bin/env python3
"""pcp and pslurp against Debian's parallel-scp and parallel-slurp and bssh's
SFTP upload and download, in the same run.

Pushes a 100 KB and a 100 MB file to N real sshd hosts (bench/testfleet.sh,
logging in as an ordinary user) and pulls it back, at parallelism N, each
tool interleaved with the others, medians of --runs. Destinations are on a
tmpfs, so this measures transfer, not the disk (pcp fsyncs, scp does not);
pulls land on disk.
"limit" is prun pushing the same bytes to `cat > /dev/null` on every host:
what the SSH cipher moves on this machine, with none of pcp's safety work.

    bench/compare_transfers.py [--hosts 100] [--runs 3] [--tools limit pcp] [--sizes "100 MB"]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_prun import HERE, ROOT, USER, Group, bssh_command, fleet_up, measure, prepare, sshd_pids  # noqa: E402

SIZES = [("100 KB", 100_000), ("100 MB", 100_000_000)]


def commands(directory, hosts, local, remote_dir, pulls):
    ssh = (f"-i {directory}/id_ed25519 -o UserKnownHostsFile={directory}/known_hosts "
           f"-o StrictHostKeyChecking=yes -o BatchMode=yes")
    ours = ["-F", "none", "-h", f"{directory}/hosts", "-p", str(hosts), "-t", "0", "-l", USER,
            "--identity", f"{directory}/id_ed25519", "-O", f"UserKnownHostsFile={directory}/known_hosts"]
    bin_dir = os.path.join(ROOT, "target/release")
    name = os.path.basename(local)
    bssh_upload, bssh_env = bssh_command(directory, str(hosts), "upload", local, remote_dir + "/bssh/")
    bssh_download, _ = bssh_command(directory, str(hosts), "download", f"{remote_dir}/{name}", f"{pulls}/bssh/")
    return {
        "limit (prun -I cat>/dev/null)": ([f"{bin_dir}/fleet", "run", *ours, "-I", "cat > /dev/null"], local, {}),
        "pcp": ([f"{bin_dir}/fleet", "cp", *ours, "--max-transfers", str(hosts), local, remote_dir + "/"], None, {}),
        "parallel-scp": (["parallel-scp", "-h", f"{directory}/hosts", "-p", str(hosts), "-t", "0", "-l", USER,
                          "-x", ssh, local, remote_dir + "/"], None, {}),
        # bssh (SFTP): every host writes the same path on this one machine,
        # so it gets a directory of its own beside pcp's.
        "bssh upload": (bssh_upload, None, bssh_env),
        "pslurp": ([f"{bin_dir}/fleet", "slurp", *ours, "-L", f"{pulls}/ours", f"{remote_dir}/{name}", name], None, {}),
        "parallel-slurp": (["parallel-slurp", "-h", f"{directory}/hosts", "-p", str(hosts), "-t", "0", "-l", USER,
                            "-x", ssh, "-L", f"{pulls}/theirs", f"{remote_dir}/{name}", name], None, {}),
        "bssh download": (bssh_download, None, bssh_env),
    }


def run_tool(argv, stdin_path, env, group, sshd_group):
    if stdin_path is None:
        return measure(argv, env, group, sshd_group)
    with open(stdin_path, "rb") as stdin:
        return measure(argv, env, group, sshd_group, stdin=stdin)


def bench(hosts, runs, only_tools, only_sizes):
    work = tempfile.mkdtemp(prefix="fleetbench-xfer-", dir="/var/tmp")
    directory = f"{work}/fleet"
    remote_dir = f"{work}/dest"
    pulls = f"{work}/pulls"
    os.makedirs(remote_dir)
    # All hosts share this machine's filesystem: 100 pcp temp files of 100 MB
    # exist at once (on real hosts, one each), hence the size.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12g,mode=1777", "fleetbench", remote_dir], check=True)
    # bssh creates no directory for an upload or a download (2.2.3).
    os.makedirs(f"{remote_dir}/bssh", mode=0o777)
    os.chmod(f"{remote_dir}/bssh", 0o777)
    os.makedirs(f"{pulls}/bssh")
    fleet_up(directory, hosts, 2400)
    os.chmod(work, 0o755)
    sshd_group = Group("fleetbench-sshd")
    for pid in sshd_pids(directory):
        sshd_group.add(pid)
    results = {}
    try:
        for label, size in [(label, size) for label, size in SIZES if not only_sizes or label in only_sizes]:
            local = f"{work}/payload-{size}"
            with open(local, "wb") as f:
                f.write(os.urandom(size))
            os.chmod(local, 0o644)
            tools = {name: command for name, command in commands(directory, hosts, local, remote_dir, pulls).items()
                     if not only_tools or name.split()[0] in only_tools}
            for _ in range(runs):
                for tool, (argv, stdin_path, env) in tools.items():
                    group = Group("fleetbench-" + tool.replace(" ", "-"))
                    results.setdefault((label, tool), []).append(run_tool(argv, stdin_path, env, group, sshd_group))
                for pulled in ("ours", "theirs", "bssh"):
                    shutil.rmtree(f"{pulls}/{pulled}", ignore_errors=True)
                os.makedirs(f"{pulls}/bssh")
    finally:
        subprocess.run([f"{HERE}/testfleet.sh", "down", directory], check=False)
        subprocess.run(["umount", remote_dir], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in results.items()}


def report(hosts, medians, runs):
    print(f"\n## {hosts} hosts, parallelism {hosts}, median of {runs} runs\n")
    print("| size | tool | wall s | client CPU s | client peak MiB | sshd CPU s |")
    print("|---|---|---|---|---|---|")
    for (label, tool), m in medians.items():
        print(f"| {label} | {tool} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss']:.1f} | {m['sshd']:.2f} |")
    print("\n| size | ratio | value |")
    print("|---|---|---|")
    ratios = [("parallel-scp", "pcp"), ("bssh upload", "pcp"), ("pcp", "limit (prun -I cat>/dev/null)"),
              ("parallel-slurp", "pslurp"), ("bssh download", "pslurp")]
    for label, _ in SIZES:
        for numerator, denominator in ratios:
            if (label, numerator) in medians and (label, denominator) in medians:
                value = medians[(label, numerator)]["wall"] / medians[(label, denominator)]["wall"]
                print(f"| {label} | {numerator} wall / {denominator} wall | {value:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", nargs="+", default=[], help="only these (limit pcp parallel-scp pslurp parallel-slurp bssh)")
    parser.add_argument("--sizes", nargs="+", default=[], choices=[label for label, _ in SIZES])
    args = parser.parse_args()
    prepare("compare_transfers")
    report(args.hosts, bench(args.hosts, args.runs, args.tools, args.sizes), args.runs)


if __name__ == "__main__":
    main()
