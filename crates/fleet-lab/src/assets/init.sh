#!/bin/sh
# PID 1 of one fleet-lab host, run by `unshare --pid --mount --uts`. Gives the
# host its own name, /tmp, /run, /var/log, /lib/modules, /root, boot_id and module
# list, then runs sshd until the host reboots: when this process exits, the
# kernel kills everything in the host's PID namespace, as a reboot would.
#   init.sh HOST_DIR LAB_DIR
set -eu
host=$1
lab=$2

hostname "$(cat "$host/name")"
mount -t tmpfs -o mode=0755,size=16m lab-run /run
mkdir -p /run/sshd /run/fleet-lab
mount -t tmpfs -o mode=1777,size=256m lab-tmp /tmp
mount --bind "$host/root/var/log" /var/log
mount --bind "$host/root/lib/modules" /lib/modules
# Its own root home: the machine's ~/.bashrc must not run on every login.
mkdir -p "$host/root/root"
mount --bind "$host/root/root" /root
mount --bind "$host/boot/boot_id" /proc/sys/kernel/random/boot_id
# The modules of this boot: /sys/module always, /proc/modules where the
# kernel has one to mount over.
if [ -e /proc/modules ]; then mount --bind "$host/boot/modules" /proc/modules; fi
mount -t tmpfs -o mode=0755,size=1m lab-modules /sys/module
cp -R "$host/boot/sys-module/." /sys/module/
cp "$host/boot/loaded-modules" /run/fleet-lab/loaded-modules
cp "$host/kernel" /run/fleet-lab/kernel
# reboot, shutdown and systemctl reach the lab, never the real machine.
mount --bind "$lab/bin" /usr/local/sbin
if [ -e /usr/bin/systemctl ]; then mount --bind "$lab/bin/systemctl" /usr/bin/systemctl; fi

set +e
trap 'kill -TERM "$sshd" 2>/dev/null; exit 0' HUP INT TERM
/usr/sbin/sshd -D -f "$host/sshd_config" -E "$host/sshd.log" &
sshd=$!
wait "$sshd"
