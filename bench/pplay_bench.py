#!/usr/bin/env python3
"""pplay: a rolling rollout on a fleet-lab, against its floor.

The shipped xen-evtchn playbook on N lab hosts whose reboot takes
--downtime seconds, with serial 10% (no canary step) and stable_for 0 (the
stable wait adds exactly its length per batch). The floor is what reboots
alone cost: batches x downtime. pplay's overhead per batch is
(total - floor) / batches: noticing the host went down, reconnecting,
copy, depmod, checks, and the batch barrier; then the same rollout again on
the updated lab, which must reboot nothing. Medians of --runs runs. Needs root.

    bench/pplay_bench.py [--hosts 100] [--downtime 3] [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_prun import prepare  # noqa: E402
BIN = os.path.join(ROOT, "target/release")
# FLEET=path/to/fleet measures another build (an older one, for a before/after).
FLEET = os.environ.get("FLEET", f"{BIN}/fleet")


def playbook(work):
    with open(os.path.join(ROOT, "playbooks/xen-evtchn-rollout.yml")) as f:
        text = f.read()
    for old, new in [('serial: [1, "10%"]', 'serial: "10%"'), ("stable_for: 5s", "stable_for: 0s")]:
        assert old in text, old
        text = text.replace(old, new)
    path = os.path.join(work, "rollout.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def one_run(hosts, downtime, work, run):
    lab = f"/var/tmp/fleet-lab-pplay-bench"
    subprocess.run([f"{BIN}/fleet-lab", "--dir", lab, "up", str(hosts), "--net", "198",
                    "--downtime", str(downtime)], check=True, stdout=subprocess.DEVNULL)
    try:
        release = os.uname().release
        module = os.path.join(work, "modules")
        os.makedirs(os.path.join(module, release), exist_ok=True)
        with open(os.path.join(module, release, "xen-evtchn.ko"), "wb") as f:
            f.write(b"\x7fELF xen-evtchn.ko vermagic=%s SMP mod_unload; rebuilt %d\n"
                    % (release.encode(), run))
        journal = os.path.join(work, f"run{run}.journal")
        total = rollout(lab, module, journal, work)
        # The same rollout again on the updated lab: nothing to do, no reboot.
        again_journal = os.path.join(work, f"run{run}-again.journal")
        again = rollout(lab, module, again_journal, work)
        with open(again_journal) as f:
            reboots = sum(1 for line in f if json.loads(line)["event"] == "reboot_issued")
        if reboots:
            sys.exit(f"the second rollout rebooted {reboots} host(s)")
        returns = return_delays(lab, journal)
    finally:
        subprocess.run([f"{BIN}/fleet-lab", "--dir", lab, "down"], check=True, stdout=subprocess.DEVNULL)
    with open(journal) as f:
        entries = [json.loads(line) for line in f]
    rollout_start = min(e["time"] for e in entries if e["event"] == "task_start" and e["phase"] == "tasks")
    preflight = rollout_start - entries[0]["time"]
    return total, preflight, again, returns


def return_delays(lab, journal):
    """Per host, from its sshd listening again (its pid file, written once
    the sockets are bound) to pplay's reconnect succeeding (journaled)."""
    delays = []
    with open(journal) as f:
        ups = [json.loads(line) for line in f]
    for up in (e for e in ups if e["event"] == "reboot_up"):
        listening = os.stat(f"{lab}/hosts.d/{up['host']}/boot/sshd.pid").st_mtime
        delays.append(up["time"] - listening)
    return delays


def rollout(lab, module, journal, work):
    """One pplay run of the shipped rollout on the lab; its wall seconds."""
    start = time.monotonic()
    subprocess.run([FLEET, "play", "-F", "none", "-i", f"{lab}/inventory.yml",
                    "-e", f"modules={module}",
                    "--journal", journal, playbook(work)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--downtime", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare("pplay_bench")
    batches = -(-args.hosts // -(-args.hosts // 10))
    floor = batches * args.downtime
    totals, preflights, agains, returns = [], [], [], []
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs):
            total, preflight, again, delays = one_run(args.hosts, args.downtime, work, run)
            returns.extend(delays)
            totals.append(total)
            preflights.append(preflight)
            agains.append(again)
    total = statistics.median(totals)
    preflight = statistics.median(preflights)
    print(f"## pplay rollout: {args.hosts} hosts, serial 10% ({batches} batches), "
          f"{args.downtime:g} s reboot, median of {args.runs}\n")
    print("| measure | value |\n|---|---|")
    print(f"| total wall | {total:.1f} s |")
    print(f"| floor (batches x reboot) | {floor:.1f} s |")
    print(f"| total / floor | {total / floor:.2f}x |")
    print(f"| preflight (facts + 5 probes and the modules read, on every host) | {preflight:.1f} s |")
    print(f"| overhead per batch, preflight excluded | {(total - preflight - floor) / batches:.2f} s |")
    print(f"| runs | {', '.join(f'{t:.1f}' for t in totals)} s |")
    returns.sort()
    print(f"| sshd listening again -> pplay reconnected, median ({len(returns)} reboots) | "
          f"{statistics.median(returns):.2f} s |")
    print(f"| the same, 90th percentile / worst | {returns[len(returns) * 9 // 10]:.2f} s / "
          f"{returns[-1]:.2f} s |")
    print(f"| the same rollout again, nothing to change (no reboot) | {statistics.median(agains):.1f} s |")


if __name__ == "__main__":
    main()
