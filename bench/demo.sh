#!/usr/bin/env bash
# The README demo: build fleet, bring up a fleet-lab of 20 real sshd hosts
# in namespaces on loopback, fan out a command with prun, scan every host's
# /var/log/messages for the xen evtchn crash, build xen-evtchn.ko for each
# of the two kernels the lab's hosts run (one build host per kernel; the
# lab's make and modinfo are a simulation), then roll the modules over all
# 20 hosts with pplay: a canary, then 10% at a time, each batch drained
# around its verified reboots. Needs root; installs openssh-server when it is
# missing. Only 127.0.0.0/8 is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server
fi
echo "Building fleet and fleet-lab (the first build takes several minutes)"
cargo build --release
# The demo's own directory: the lab, the collected logs, and the tools by
# their pssh names (links to the one fleet binary). All removed at exit.
work=$(mktemp -d /var/tmp/fleet-demo.XXXXXX)
lab=$work/lab
mkdir "$work/bin"
for tool in prun pplay; do ln -s "$PWD/target/release/fleet" "$work/bin/$tool"; done
bin=$work/bin
trap 'target/release/fleet-lab --dir "$lab" down >/dev/null 2>&1; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A loopback net and port no other lab or service holds (fleet-lab refuses
# taken ones by name), so a second demo or a test run can run beside this one.
taken() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
net=$(( 10 + $$ % 240 ))
port=$(( 20000 + $$ % 30000 ))
while taken "127.$net.0.1" "$port" || taken 127.0.0.1 "$port"; do port=$(( port + 1 )); done
target/release/fleet-lab --dir "$lab" up 20 --net "$net" --port "$port" --downtime 2 \
  --crash-share 0.15 --kernels 6.1.0-18-amd64,6.1.0-21-amd64

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() { echo "\$ $*"; "$@" || echo "(exit code $?)"; }

say "Fan out a command to the 20 hosts"
show "$bin/prun" -h "$lab/hosts" -O "UserKnownHostsFile=$lab/known_hosts" --identity "$lab/id_ed25519" \
  -p 20 -P 'echo "$(uptime -p), boot $(cut -c1-8 /proc/sys/kernel/random/boot_id)"'

say "Which hosts hit the xen evtchn BUG? (pulls /var/log/messages from every host)"
show "$bin/pplay" -i "$lab/inventory.yml" -e "collect_dir=$work/messages" \
  --journal "$work/scan.journal" playbooks/crash-scan.yml

say "Build xen-evtchn.ko with the fix, once per kernel the hosts run"
printf '/* drivers/xen/evtchn.c with the port-reuse fix */\n' > "$work/evtchn.c"
show "$bin/pplay" -i "$lab/inventory.yml" -e "source=$work/evtchn.c" -e "modules=$work/modules" \
  --journal "$work/build.journal" playbooks/xen-evtchn-build.yml

say "Roll it out: 1 canary, then 10% at a time, batches drained around verified reboots"
sed 's/stable_for: 5s/stable_for: 2s/' playbooks/xen-evtchn-rollout.yml > "$work/rollout.yml"
show "$bin/pplay" -i "$lab/inventory.yml" -e "modules=$work/modules" \
  -e "drain_command=echo drain" -e "undrain_command=echo undrain" \
  --journal "$work/rollout.journal" "$work/rollout.yml"

say "Every host now runs the new module"
show "$bin/prun" -h "$lab/hosts" -O "UserKnownHostsFile=$lab/known_hosts" --identity "$lab/id_ed25519" \
  -p 20 -b 'cut -d" " -f1-3 /run/fleet-lab/loaded-modules'
