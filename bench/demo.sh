#!/usr/bin/env bash
# The README demo: build fleet, bring up a fleet-lab of 20 real sshd hosts
# in namespaces on loopback, then find the hosts that hit the xen evtchn
# crash, and reboot one of them. Needs root; installs openssh-server when it
# is missing. Only 127.0.0.0/8 is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server
fi
cargo build --release --quiet
lab=${FLEET_LAB_DIR:-/var/tmp/fleet-demo}
target/release/fleet-lab --dir "$lab" up 20 --downtime 2 --crash-share 0.15
trap 'target/release/fleet-lab --dir "$lab" down' EXIT

prun() {
  target/release/prun -h "$lab/hosts" -O "UserKnownHostsFile=$lab/known_hosts" --identity "$lab/id_ed25519" "$@"
}
show() { echo; echo "\$ prun $*"; prun "$@" || echo "(exit code $?)"; }

show -p 20 uptime
show -P 'echo "$(hostname) boot $(cut -c1-8 /proc/sys/kernel/random/boot_id)"'
echo; echo "# Which hosts logged the xen evtchn BUG?"
show -p 20 -P 'n=$(grep -c "kernel BUG at drivers/xen/evtchn.c" /var/log/messages); if [ "$n" -gt 0 ]; then echo "$(hostname) logged the evtchn BUG $n time(s)"; fi'

echo; echo "# Reboot the first host: the session drops, the host returns with a new boot_id"
first=$(head -1 "$lab/hosts")
one() { target/release/prun -H "$first" -O "UserKnownHostsFile=$lab/known_hosts" --identity "$lab/id_ed25519" "$@"; }
one -i 'echo "before: $(cat /proc/sys/kernel/random/boot_id)"; reboot'
sleep 3
one -i 'echo "after:  $(cat /proc/sys/kernel/random/boot_id)"'
