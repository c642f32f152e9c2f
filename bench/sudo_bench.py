#!/usr/bin/env python3
"""What --sudo costs: `true` on N real sshd hosts as an ordinary user,
plain, through sudo with a NOPASSWD rule, and through sudo answering a
password, beside parallel-ssh running `sudo -n true` in the same run.
Prints the median wall seconds and client CPU seconds of each (medians of
--runs), and the ratios. Creates a user and a sudoers drop-in, and removes
them. Needs root.

    bench/sudo_bench.py [--hosts 100] [--runs 3]
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
USERS = {"fleetsudo1": "NOPASSWD: ALL", "fleetsudo2": "ALL"}
PASSWORD = "Bench-pw-1"


def timed(command):
    """Wall and client CPU seconds (children included) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def make_users(dir):
    for user, rule in USERS.items():
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user],
                       stderr=subprocess.DEVNULL)
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n".encode(), check=True)
        path = f"/etc/sudoers.d/fleet-bench-{user}"
        with open(path, "w") as f:
            f.write(f"Defaults:{user} !lecture\n{user} ALL=(ALL:ALL) {rule}\n")
        os.chmod(path, 0o440)
    with open(f"{dir}/password", "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(f"{dir}/password", 0o600)


def remove_users():
    for user in USERS:
        try:
            os.remove(f"/etc/sudoers.d/fleet-bench-{user}")
        except FileNotFoundError:
            pass
        subprocess.run(["userdel", "--remove", user], stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    fleet = f"{ROOT}/target/release/fleet"
    if not os.path.exists(fleet):
        sys.exit("build first: cargo build --release")
    dir = tempfile.mkdtemp(prefix="fleet-sudo-bench-")
    # sshd reads authorized_keys as the user logging in.
    os.chmod(dir, 0o711)
    try:
        make_users(dir)
        subprocess.run([f"{HERE}/testfleet.sh", "up", dir, str(args.hosts),
                        "--port", "24901", "--net", "231"], check=True)
        hosts, known, key = f"{dir}/hosts", f"{dir}/known_hosts", f"{dir}/id_ed25519"
        common = [fleet, "run", "-F", "none", "-q", "-p", str(args.hosts), "-h", hosts,
                  "-O", f"UserKnownHostsFile={known}", "--identity", key]
        tools = {
            "prun": common + ["-l", "fleetsudo1", "true"],
            "prun --sudo (NOPASSWD)": common + ["-l", "fleetsudo1", "--sudo", "true"],
            "prun --sudo (password)": common + ["-l", "fleetsudo2", "--sudo",
                                                "--password-file", f"{dir}/password", "true"],
        }
        pssh = shutil.which("parallel-ssh")
        if pssh:
            tools["parallel-ssh 'sudo -n true'"] = [
                pssh, "-p", str(args.hosts), "-h", hosts, "-l", "fleetsudo1",
                "-x", f"-o UserKnownHostsFile={known} -i {key} -o BatchMode=yes",
                "sudo -n true"]
        results = {name: [] for name in tools}
        for _ in range(args.runs):
            for name, command in tools.items():
                results[name].append(timed(command))
        print(f"{args.hosts} hosts, medians of {args.runs} runs")
        medians = {}
        for name, runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            medians[name] = (wall, cpu)
            print(f"  {name:32} wall {wall:6.2f} s   client CPU {cpu:6.2f} s")
        base = medians["prun"][0]
        for name, (wall, _) in medians.items():
            print(f"  {name:32} {wall / base:5.2f}x prun's wall")
    finally:
        subprocess.run([f"{HERE}/testfleet.sh", "down", dir])
        remove_users()
        shutil.rmtree(dir, ignore_errors=True)


if __name__ == "__main__":
    main()
