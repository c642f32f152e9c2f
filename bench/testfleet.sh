#!/usr/bin/env bash
# A fleet of real OpenSSH sshd hosts on loopback addresses, for tests,
# benchmarks and trying prun by hand.
#
#   bench/testfleet.sh up DIR N [--port PORT] [--net A] [--user USER] [--password-auth] [--dropbear]
#                                [--sshd-option "Keyword value"]...
#                                [--host-ca CA_KEY [--host-cert-validity SPEC] [--host-cert-principals LIST]]
#                                [--pam-service NAME]
#   bench/testfleet.sh down DIR
#
# `up` starts ceil(N/16) sshd processes, each listening on 16 addresses
# 127.A.x.y:PORT, and writes into DIR:
#   hosts         one ADDR:PORT per line (pssh format)
#   known_hosts   the host key of every host
#   id_ed25519    the client key every host accepts
# so that this works at once:
#   prun -h DIR/hosts -O UserKnownHostsFile=DIR/known_hosts --identity DIR/id_ed25519 uptime
# --user creates (if needed) an ordinary user with a plain shell for logins.
# --password-auth lets sshd accept passwords (of /etc/shadow) as well.
# --sshd-option adds a line to every sshd_config (KexAlgorithms ...).
# --host-ca signs each host key with CA_KEY (ssh-keygen -h; principals: the
# host addresses, validity -5m:+1h unless given) and serves the certificate.
# --pam-service runs sshd with PAM and keyboard-interactive on, under the
# PAM service NAME (/etc/pam.d/NAME, which the caller provides): sshd
# names its PAM service after its program name, so it is started through a
# link of that name.
# --dropbear serves the hosts with Dropbear (Debian's dropbear-bin, common
# on embedded and rescue hosts) instead of OpenSSH, one process per host.
# Only 127.0.0.0/8 addresses are used. `up` on a DIR whose fleet is still
# running stops that fleet first.
#
# sshd runs in a mount namespace of its own where root's home is DIR/home
# and root's shell is /bin/sh (a private copy of /etc/passwd is mounted over
# the real one there): the machine's own dotfiles (a pyenv in ~/.bashrc, say)
# never run on a test login, and nothing outside the fleet changes.
set -euo pipefail

SSHD=/usr/sbin/sshd
PER_PROCESS=16

die() { echo "testfleet: $*" >&2; exit 1; }

down() {
  local dir=$1 pidfile pid alive
  local -a pids=()
  for pidfile in "$dir"/sshd-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      pids+=("$pid")
    fi
  done
  # Every listener is told at once and given 2.5 s together: one by one,
  # 625 of them took minutes.
  for _ in $(seq 50); do
    alive=()
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
    done
    pids=("${alive[@]}")
    [ ${#pids[@]} -gt 0 ] || break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$dir"/sshd-*.pid
}

address() { # index -> 127.NET.x.y, 250 hosts per /24 so no .0 or .255
  local i=$1
  echo "127.$NET.$(( i / 250 )).$(( i % 250 + 1 ))"
}

ensure_user() {
  local user=$1
  if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$user"
  fi
  # '*' instead of the locked '!': without PAM, sshd refuses locked accounts.
  usermod -p '*' "$user"
}

plain_root() { # DIR/passwd: /etc/passwd with root at home in DIR/home, in /bin/sh
  local dir=$1
  mkdir -p "$dir/home"
  awk -F: -v OFS=: -v home="$dir/home" '$1 == "root" { $6 = home; $7 = "/bin/sh" } { print }' \
    /etc/passwd > "$dir/passwd"
  chmod 0644 "$dir/passwd"
}

up() {
  local dir=$1 count=$2; shift 2
  local port=2222 user="" passwords=no server=openssh extra="" host_ca="" validity="-5m:+1h" principals=""
  local pam="" sshd=$SSHD
  NET=1
  while [ $# -gt 0 ]; do
    case $1 in
      --port) port=$2; shift 2 ;;
      --net) NET=$2; shift 2 ;;
      --user) user=$2; shift 2 ;;
      --password-auth) passwords=yes; shift ;;
      --dropbear) server=dropbear; shift ;;
      --sshd-option) extra="$extra$2
"; shift 2 ;;
      --host-ca) host_ca=$2; shift 2 ;;
      --host-cert-validity) validity=$2; shift 2 ;;
      --host-cert-principals) principals=$2; shift 2 ;;
      --pam-service) pam=$2; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [ -x "$SSHD" ] || die "$SSHD not found: install openssh-server"
  [ "$count" -ge 1 ] || die "N must be at least 1"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  down "$dir"
  rm -f "$dir"/hosts "$dir"/known_hosts "$dir"/sshd-*.conf
  # sshd's privilege separation directory.
  mkdir -p /run/sshd && chmod 0755 /run/sshd
  [ -n "$user" ] && ensure_user "$user"

  plain_root "$dir"
  if [ -n "$pam" ]; then
    [[ $pam =~ ^[a-z0-9-]+$ ]] || die "--pam-service: letters, digits and - only"
    sshd="$dir/$pam"
    ln -sfn "$SSHD" "$sshd"
  fi
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C testfleet -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  chmod 0644 "$dir/authorized_keys"
  if [ "$server" = dropbear ]; then
    dropbear_hosts "$dir" "$count" "$port"
    return
  fi

  local groups=$(( (count + PER_PROCESS - 1) / PER_PROCESS )) g i addr key
  for g in $(seq 0 $(( groups - 1 ))); do
    [ -f "$dir/hostkey-$g" ] || ssh-keygen -q -t ed25519 -N '' -C "testfleet-$g" -f "$dir/hostkey-$g"
    key=$(cut -d' ' -f1,2 "$dir/hostkey-$g.pub")
    local certificate=""
    if [ -n "$host_ca" ]; then
      local names=$principals
      if [ -z "$names" ]; then
        names=$(for i in $(seq $(( g * PER_PROCESS )) $(( g * PER_PROCESS + PER_PROCESS - 1 ))); do
          if [ "$i" -lt "$count" ]; then address "$i"; fi; done | paste -sd, -)
      fi
      rm -f "$dir/hostkey-$g-cert.pub"
      ssh-keygen -q -s "$host_ca" -I "testfleet-$g" -h -n "$names" -V "$validity" "$dir/hostkey-$g.pub"
      certificate="HostCertificate $dir/hostkey-$g-cert.pub
"
    fi
    {
      for i in $(seq $(( g * PER_PROCESS )) $(( g * PER_PROCESS + PER_PROCESS - 1 ))); do
        [ "$i" -lt "$count" ] || break
        addr=$(address "$i")
        echo "ListenAddress $addr:$port"
        echo "$addr:$port" >> "$dir/hosts"
        echo "[$addr]:$port $key" >> "$dir/known_hosts"
      done
      cat <<CONF
HostKey $dir/hostkey-$g
PidFile $dir/sshd-$g.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM $([ -n "$pam" ] && echo yes || echo no)
PasswordAuthentication $passwords
KbdInteractiveAuthentication $([ -n "$pam" ] && echo yes || echo no)
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 10000
MaxSessions 100
MaxAuthTries 10
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
LogLevel INFO
CONF
      printf '%s%s' "$certificate" "$extra"
    } > "$dir/sshd-$g.conf.tmp"
    mv "$dir/sshd-$g.conf.tmp" "$dir/sshd-$g.conf"
    # sshd binds every address before it daemonizes, so the host is
    # reachable as soon as this returns.
    in_namespace "$dir" "$sshd" -f "$dir/sshd-$g.conf" -E "$dir/sshd-$g.log" \
      || die "sshd $g failed to start; see $dir/sshd-$g.log"
  done
}

in_namespace() { # DIR PROGRAM ARGS...: run with DIR/passwd over /etc/passwd
  local dir=$1; shift
  unshare --mount --propagation private \
    sh -c 'mount --bind "$1/passwd" /etc/passwd && shift && exec "$@"' sh "$dir" "$@"
}

dropbear_hosts() { # Dropbear reads ~/.ssh/authorized_keys: root's home is DIR/home here
  local dir=$1 count=$2 port=$3 i addr
  command -v dropbear >/dev/null || die "dropbear not found: install dropbear-bin"
  mkdir -p "$dir/home/.ssh" && chmod 0700 "$dir/home/.ssh"
  install -m 0600 "$dir/authorized_keys" "$dir/home/.ssh/authorized_keys"
  for i in $(seq 0 $(( count - 1 ))); do
    addr=$(address "$i")
    [ -f "$dir/dbkey-$i" ] || dropbearkey -t ed25519 -f "$dir/dbkey-$i" >/dev/null 2>&1
    echo "$addr:$port" >> "$dir/hosts"
    echo "[$addr]:$port $(dropbearkey -y -f "$dir/dbkey-$i" | grep '^ssh-' | cut -d' ' -f1,2)" >> "$dir/known_hosts"
    in_namespace "$dir" dropbear -r "$dir/dbkey-$i" -p "$addr:$port" -P "$dir/sshd-$i.pid" -s \
      2>"$dir/sshd-$i.log" || die "dropbear $i failed to start; see $dir/sshd-$i.log"
  done
  # Dropbear writes its pid file once it listens.
  for i in $(seq 0 $(( count - 1 ))); do
    for _ in $(seq 100); do [ -s "$dir/sshd-$i.pid" ] && break; sleep 0.05; done
  done
}

case ${1:-} in
  up) [ $# -ge 3 ] || die "usage: $0 up DIR N [--port PORT] [--net A] [--user USER]"; shift; up "$@" ;;
  down) [ $# -eq 2 ] || die "usage: $0 down DIR"; down "$2" ;;
  *) die "usage: $0 up DIR N [options] | down DIR" ;;
esac
