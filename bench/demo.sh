#!/usr/bin/env bash
# The README demo: build fleet, start a local fleet of 20 real sshd hosts on
# loopback, and run prun across it. Needs root (sshd) and installs
# openssh-server when it is missing. Only 127.0.0.0/8 is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server
fi
cargo build --release --quiet
lab=${FLEET_DEMO_DIR:-/tmp/fleet-demo}
bench/testfleet.sh up "$lab" 20 --port 2222 --net 1
trap 'bench/testfleet.sh down "$lab"' EXIT

prun() {
  target/release/prun -h "$lab/hosts" -O "UserKnownHostsFile=$lab/known_hosts" --identity "$lab/id_ed25519" "$@"
}
run() { echo; echo "\$ prun $*"; prun "$@" || echo "(exit code $?)"; }

run -p 20 uptime
run -i 'echo "$PSSH_HOST is node $PSSH_NODENUM of $PSSH_NUMNODES"'
run -t 2 'if [ "$PSSH_NODENUM" -lt 2 ]; then sleep 60; elif [ "$PSSH_NODENUM" -lt 4 ]; then exit 3; fi'
