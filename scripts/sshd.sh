#!/usr/bin/env bash
# Separate OpenSSH server instances on 127.0.0.1, one per test "host", for hsm's SSH and rsync
# integration tests. Each instance has its own config, host key, authorized_keys, pid file, log and
# port under $HSM_SSHD_DIR/NAME/, so the system sshd and ~/.ssh are never touched.
#
#   sshd.sh start NAME [--port P] [--no-sftp]
#                                   start instance NAME (idempotent); prints its port on stdout;
#                                   --no-sftp: without the SFTP subsystem (as some servers are)
#   sshd.sh stop NAME               stop it and drop its open connections, like a host going down
#   sshd.sh status NAME             exit 0 when it runs (prints the port), 3 when it does not
#   sshd.sh client-key              print the path of the client private key (created if needed)
#
# Environment: HSM_SSHD_DIR (default /tmp/hsm-sshd).
#
# Files: $HSM_SSHD_DIR/client_key (ed25519, no passphrase, shared by all instances) and, per
# instance, NAME/known_hosts with the line for [127.0.0.1]:PORT. Connect with
#   ssh -i $HSM_SSHD_DIR/client_key -p PORT -o UserKnownHostsFile=$HSM_SSHD_DIR/NAME/known_hosts \
#       -o StrictHostKeyChecking=yes -o BatchMode=yes USER@127.0.0.1
# where USER is root when the script ran as root, else the user who ran it.
#
# A restarted instance keeps its port (saved in NAME/port) and host key, so a client's known_hosts
# stays valid across stop/start: tests stop an instance mid-sweep to simulate a host going down.
set -euo pipefail

BASE="${HSM_SSHD_DIR:-/tmp/hsm-sshd}"
CLIENT_KEY="$BASE/client_key"
SSHD=/usr/sbin/sshd # sshd re-executes itself and insists on an absolute path

log() { printf 'sshd.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

check_name() {
    [[ "${1:-}" =~ ^[A-Za-z0-9_.-]+$ ]] || die "instance NAME must be letters, digits, '.', '_' or '-' (got '${1:-}')"
}

ensure_client_key() {
    mkdir -p "$BASE"
    if [[ ! -s "$CLIENT_KEY" ]]; then
        # Written under a temporary name and renamed, so two starts racing never see half a key.
        local tmp="$CLIENT_KEY.tmp.$$"
        ssh-keygen -q -t ed25519 -N '' -C "hsm-test-client" -f "$tmp" >/dev/null
        mv "$tmp.pub" "$CLIENT_KEY.pub"
        mv "$tmp" "$CLIENT_KEY"
    fi
    chmod 600 "$CLIENT_KEY" # ssh refuses a private key others can read
}

# PID of instance NAME's listening sshd, or nothing. The command line must name our config, so a
# reused PID is never signalled.
listener_pid() {
    local inst="$1" pid cmdline
    [[ -r "$inst/sshd.pid" ]] || return 0
    pid="$(<"$inst/sshd.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 0
    if [[ "$cmdline" == *"-f $inst/sshd_config"* ]]; then
        echo "$pid"
    fi
}

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A zombie counts as gone: PID 1 of some containers never reaps orphans.
is_alive() { [[ -d "/proc/$1" ]] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

cmd_start() {
    local name="${1:-}" port="" sftp=1
    check_name "$name"
    shift
    while (($#)); do
        case "$1" in
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --port=*) port="${1#*=}"; shift ;;
            --no-sftp) sftp=0; shift ;;
            *) die "start: unknown option '$1'" ;;
        esac
    done
    [[ -z "$port" || "$port" =~ ^[0-9]+$ ]] || die "--port must be a number, not '$port'"
    [[ -x "$SSHD" ]] || die "$SSHD not found; install openssh-server (scripts/install-test-services.sh, as root)"

    local inst="$BASE/$name" pid
    mkdir -p "$inst" 2>/dev/null || die "cannot create $inst; set HSM_SSHD_DIR to a directory you can write"
    pid="$(listener_pid "$inst")"
    if [[ -n "$pid" ]]; then
        local has_sftp=0
        grep -q '^Subsystem sftp' "$inst/sshd_config" && has_sftp=1
        if [[ (-z "$port" || "$port" == "$(<"$inst/port")") && "$has_sftp" == "$sftp" ]]; then
            cat "$inst/port"
            return 0
        fi
        [[ -n "$port" ]] || port="$(<"$inst/port")" # same port: clients' known_hosts stay valid
        log "$name runs on port $(<"$inst/port") with sftp=$has_sftp; restarting it on port $port with sftp=$sftp"
        cmd_stop "$name"
    fi

    # The privilege separation directory; /run is a tmpfs, so it vanishes with every boot.
    if [[ ! -d /run/sshd ]]; then
        if [[ $EUID -eq 0 ]]; then
            mkdir -p /run/sshd
            chmod 0755 /run/sshd
        else
            die "/run/sshd is missing and only root can create it"
        fi
    fi

    # Same port as last time unless told otherwise, so clients' known_hosts lines stay valid.
    if [[ -z "$port" && -s "$inst/port" ]]; then
        port="$(<"$inst/port")"
        if port_open "$port"; then
            log "port $port of the last run is taken by something else; picking a new one"
            port=""
        fi
    fi
    [[ -n "$port" ]] || port="$(free_port)"

    ensure_client_key
    [[ -s "$inst/ssh_host_ed25519_key" ]] \
        || ssh-keygen -q -t ed25519 -N '' -C "hsm-test-host-$name" -f "$inst/ssh_host_ed25519_key" >/dev/null
    cp "$CLIENT_KEY.pub" "$inst/authorized_keys"

    local user
    user="$(id -un)"
    # StrictModes no: the instance directory lives under /tmp (world-writable), which StrictModes
    # would reject for AuthorizedKeysFile. UsePAM no: pam_loginuid fails in many containers, and
    # key-only login needs nothing from PAM.
    cat >"$inst/sshd_config" <<EOF
# Generated by hsm scripts/sshd.sh for test instance '$name'.
ListenAddress 127.0.0.1
Port $port
HostKey $inst/ssh_host_ed25519_key
PidFile $inst/sshd.pid
AuthorizedKeysFile $inst/authorized_keys
AllowUsers $user
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel INFO
EOF
    if ((sftp)); then
        echo "Subsystem sftp /usr/lib/openssh/sftp-server" >>"$inst/sshd_config"
    fi
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$inst/ssh_host_ed25519_key.pub")" >"$inst/known_hosts"
    echo "$port" >"$inst/port"

    "$SSHD" -t -f "$inst/sshd_config" 2>"$inst/sshd.log" \
        || { cat "$inst/sshd.log" >&2; die "sshd rejects $inst/sshd_config"; }
    # Detached stdio: a caller capturing our output must not wait on a pipe held by the daemon.
    "$SSHD" -f "$inst/sshd_config" -E "$inst/sshd.log" </dev/null >/dev/null 2>&1 \
        || { tail -n 20 "$inst/sshd.log" >&2; die "sshd for $name did not start"; }

    local i
    for i in $(seq 100); do
        if port_open "$port" && [[ -n "$(listener_pid "$inst")" ]]; then
            echo "$port"
            return 0
        fi
        sleep 0.05
    done
    tail -n 20 "$inst/sshd.log" >&2
    die "sshd for $name does not listen on 127.0.0.1:$port after 5s"
}

descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

cmd_stop() {
    local name="${1:-}" inst pid pids i alive
    check_name "$name"
    inst="$BASE/$name"
    pid="$(listener_pid "$inst")"
    if [[ -z "$pid" ]]; then
        log "$name is not running"
        return 0
    fi
    # A host that goes down takes its connections and everything they run with it. Each
    # connection is a child of the listener and the commands are its descendants; collect the whole
    # tree while the listener still links it together, then stop it all at once.
    pids=("$pid")
    mapfile -t -O 1 pids < <(descendants "$pid")
    kill "${pids[@]}" 2>/dev/null || true
    for i in $(seq 100); do
        alive=0
        for pid in "${pids[@]}"; do
            is_alive "$pid" && alive=1
        done
        ((alive)) || break
        sleep 0.05
    done
    for pid in "${pids[@]}"; do
        is_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$inst/sshd.pid"
    log "stopped $name"
}

cmd_status() {
    local name="${1:-}" inst pid
    check_name "$name"
    inst="$BASE/$name"
    pid="$(listener_pid "$inst")"
    if [[ -n "$pid" ]]; then
        echo "$name: running, pid $pid, port $(<"$inst/port")"
        return 0
    fi
    echo "$name: not running"
    exit 3
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    client-key) ensure_client_key; echo "$CLIENT_KEY" ;;
    -h | --help | help | "") usage ;;
    *) log "unknown command '$1'"; usage ;;
esac
