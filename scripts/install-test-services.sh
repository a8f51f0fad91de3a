#!/usr/bin/env bash
# Install, from Debian/Ubuntu packages, every real service hsm's full test suite uses:
#   slurm-wlm slurm-wlm-torque munge   Slurm on localhost and its PBS/Torque qsub/qstat/qdel
#   slurmdbd mariadb-server            a second, throw-away Slurm cluster with accounting (sacct)
#   openssh-server rsync               SSH hosts on 127.0.0.1 and syncing over them
#   parallel                           the GNU parallel baseline of the local benchmarks
#   chromium                           headless browser that renders the HTML reports in tests
#   strace                             kills a process at an exact system call (the lock-window chaos)
#   bash-builtins                      bash's loadable rm and sleep, which the shell fast path uses when present
# Then start them with scripts/slurm.sh and scripts/sshd.sh (the tests do that themselves).
#
# A no-op (a few milliseconds, no apt-get) when everything is already installed. Needs root
# otherwise; without root it prints the apt-get line to run and exits 1.
set -euo pipefail

PACKAGES=(slurm-wlm slurm-wlm-torque munge slurmdbd mariadb-server openssh-server rsync parallel chromium strace bash-builtins)

log() { printf 'install-test-services.sh: %s\n' "$*" >&2; }

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
else
    # Not a Debian system: judge by the commands, and the apt-get hint below is only a guide.
    for cmd in sbatch slurmctld slurmd munged qsub sshd rsync parallel; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] || missing+=("$cmd")
    done
    if ((${#missing[@]})); then
        log "missing commands: ${missing[*]}; install the equivalents of: ${PACKAGES[*]}"
        exit 1
    fi
fi

if ((${#missing[@]} == 0)); then
    log "all installed: ${PACKAGES[*]}"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    log "missing packages: ${missing[*]}"
    log "run as root: apt-get update && apt-get install -y ${missing[*]}"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "installing: ${missing[*]}"
# Skip the slow `apt-get update` when the package lists already know the packages.
if ! apt-get install -y "${missing[@]}"; then
    apt-get update
    apt-get install -y "${missing[@]}"
fi
log "done"
