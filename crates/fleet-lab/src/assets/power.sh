#!/bin/sh
# reboot, shutdown -r, systemctl reboot on a fleet-lab host. Like a real
# reboot, it returns at once and the host goes down a moment later.
me=$(basename "$0")
case "$me" in
  reboot) ;;
  shutdown)
    case " $* " in
      *" -r "*|*" --reboot "*) ;;
      *) echo "$me: lab hosts only reboot: use 'shutdown -r now'" >&2; exit 1 ;;
    esac ;;
  systemctl)
    if [ "${1:-}" != reboot ]; then
      echo "$me: this lab host has no systemd; only 'systemctl reboot' works" >&2
      exit 1
    fi ;;
  *) echo "$me: lab hosts cannot power off; use reboot" >&2; exit 1 ;;
esac
echo "$(date '+%b %e %H:%M:%S') $(hostname) systemd-logind: System is rebooting (requested by $me)." >> /var/log/messages
(sleep 0.2; kill -TERM 1) >/dev/null 2>&1 &
exit 0
