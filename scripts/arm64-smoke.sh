#!/usr/bin/env bash
# The recorder on the Raspberry Pi's architecture. Builds a Debian bookworm arm64 userland (the
# userland of 64-bit Raspberry Pi OS) with mmdebstrap, runs it under qemu-user, installs the
# project there from the package index's aarch64 wheels (with the [micro,crypto] extras), runs
# one scene per engine (openWakeWord's hey_jarvis, microWakeWord's okay_nabu), and compares the
# saved WAVs and sidecars with the same scenes run here on x86-64 by the checkout's venv. Exit 0
# when they are identical, 1 when they differ or a step fails, 77 when this machine cannot run
# arm64 programs at all (no binfmt_misc, qemu's interpreter cannot be registered with it, or
# chroot and mounts are not permitted).
#
# usage: scripts/arm64-smoke.sh [--workdir DIR] [--x86-venv DIR] [--models DIR] [--mirror URL]
#                               [--cpu MODEL] [--keep]
#   --workdir DIR   everything the run makes: the arm64 root, logs and recordings
#                   (default /tmp/recorder-arm64-smoke). Emptied first (mounts left by an
#                   interrupted run are undone), removed at the end unless --keep is given or
#                   the run failed.
#   --x86-venv DIR  the venv of the reference run (default ./.venv, as `make test` makes it);
#                   it needs the [micro] extra for okay_nabu
#   --models DIR    the installed, verified models (default ./models, as `make setup` fetches
#                   them); copied into the arm64 root
#   --mirror URL    the Debian mirror for mmdebstrap (default: the host's own Debian mirror from
#                   its apt sources, else http://deb.debian.org/debian)
#   --cpu MODEL     the CPU qemu emulates (default cortex-a72, a Raspberry Pi 4's; cortex-a53 is
#                   a Pi 3's or Zero 2 W's, cortex-a76 a Pi 5's, max every feature qemu has)
#   --keep          keep the work directory
#
# Needs root (mmdebstrap, chroot, mounts) and a Debian or Ubuntu x86-64 host. It installs
# mmdebstrap, qemu-user-static and binfmt-support with apt-get when they are missing, mounts
# binfmt_misc when it is not mounted and registers qemu's aarch64 interpreter.
#
# The arm64 root uses the host's pip configuration: its pip.conf files, its PIP_* variables, its
# CA certificates and proxy variables, and (read-only) the local directories they name, such as
# a find-links directory or a file:// index. The versions of the x86 venv's packages are the
# constraints of the arm64 install, so that both runs use the same releases.
#
# The emulated CPU is a Raspberry Pi 4's (QEMU_CPU=cortex-a72: its SIMD extensions, i.e. NEON
# without dot products, fp16 or SVE, which is what onnxruntime picks its kernels by; qemu's
# default CPU has them all). Known trap: qemu 7.2 (Debian 12) shows the host's x86 /proc/cpuinfo
# to the emulated program, and `import onnxruntime` then crashes (its CPU detection finds no ARM
# processor); a Raspberry Pi 4's /proc/cpuinfo is bind-mounted over the root's.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=/tmp/recorder-arm64-smoke
X86_VENV=$REPO/.venv
MODELS=$REPO/models
MIRROR=
CPU=cortex-a72
KEEP=0
SUITE=bookworm
# scene (tests/audio/SCENE.wav) and the model it is run with: one per engine, and short ones
# (7 s each), as everything in the arm64 root is emulated
SCENES=("jarvis_pause_command hey_jarvis" "nabu_pause_command okay_nabu")

usage() {
    sed -n '11,25p' "$0" | sed 's/^# \{0,1\}//'
    exit "$1"
}

while [ $# -gt 0 ]; do
    case $1 in
    --workdir) WORK=${2:?--workdir needs a directory}; shift 2 ;;
    --x86-venv) X86_VENV=${2:?--x86-venv needs a directory}; shift 2 ;;
    --models) MODELS=${2:?--models needs a directory}; shift 2 ;;
    --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
    --cpu) CPU=${2:?--cpu needs a qemu CPU model}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "arm64-smoke: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

log() { echo "arm64-smoke: $*"; }
# This machine cannot emulate arm64: not a difference, and not a failed step of the check.
cannot() {
    echo "arm64-smoke: CANNOT RUN HERE: $*" >&2
    exit 77
}
die() {
    echo "arm64-smoke: FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot and mounts)"
[ "$(uname -m)" = x86_64 ] || die "runs on an x86-64 host (this is $(uname -m))"
case $WORK in
/*) ;;
*) WORK=$(pwd)/$WORK ;;
esac
WORK=${WORK%/}
[[ $WORK =~ ^/[A-Za-z0-9._/-]+$ ]] || die "--workdir must be a path of letters, digits, . _ - /"
case "$REPO/" in "$WORK"/*) die "--workdir must not contain the checkout ($REPO)" ;; esac
[ "$(dirname "$WORK")" != / ] || die "--workdir must not be a top-level directory ($WORK)"
X86_VENV=$(cd "$X86_VENV" 2>/dev/null && pwd) || die "no x86 venv; run make setup (or make test)"
MODELS=$(cd "$MODELS" 2>/dev/null && pwd) || die "no models directory; run make setup"
[ -x "$X86_VENV/bin/recorder" ] || die "$X86_VENV/bin/recorder is missing; run make setup"
"$X86_VENV/bin/python" -c 'import pymicro_wakeword' 2>/dev/null ||
    die "the x86 venv lacks the [micro] extra: $X86_VENV/bin/pip install -e '${REPO}[micro]'"

ROOT=$WORK/root
HOME=${HOME:-/root}
XDG_CONFIG_DIRS=${XDG_CONFIG_DIRS:-}
MARKER=$WORK/.recorder-arm64-smoke
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# --- phases and their times ---------------------------------------------------------------------
declare -a TIMES=()
PHASE=
PHASE_START=0
phase() {
    phase_end
    PHASE=$1
    PHASE_START=$SECONDS
    echo "== arm64-smoke: $PHASE"
}
phase_end() {
    if [ -n "$PHASE" ]; then
        TIMES+=("$(printf '%-28s %4d s' "$PHASE" $((SECONDS - PHASE_START)))")
        PHASE=
    fi
}
print_times() {
    phase_end
    if [ ${#TIMES[@]} -gt 0 ]; then
        echo "arm64-smoke: phase times"
        printf '  %s\n' "${TIMES[@]}"
        printf '  %-28s %4d s\n' total "$SECONDS"
    fi
}

# --- mounts -------------------------------------------------------------------------------------
# The mount points under the work directory, deepest first.
mounts_under() {
    awk -v root="$1" 'index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r
}
unmount_all() {
    local mp
    for mp in $(mounts_under "$WORK"); do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done
    [ -z "$(mounts_under "$WORK")" ]
}
# Empties the work directory: only one made by this script, and only with nothing mounted in it
# (a bind mount of the host's directories shares their file system, so rm would go into them).
empty_workdir() {
    if [ -e "$WORK" ]; then
        [ -e "$MARKER" ] || [ -z "$(ls -A "$WORK")" ] ||
            die "$WORK exists and was not made by this script; pick another --workdir"
        unmount_all || die "could not unmount everything under $WORK: $(mounts_under "$WORK")"
        rm -rf --one-file-system "$WORK"
    fi
    mkdir -p "$WORK"
    touch "$MARKER"
}
STATUS=1
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ! unmount_all; then
        echo "arm64-smoke: still mounted under $WORK: $(mounts_under "$WORK" | tr '\n' ' ')" >&2
        rc=1
    elif [ "$STATUS" = 0 ] && [ "$KEEP" = 0 ]; then
        rm -rf --one-file-system "$WORK"
    elif [ -d "$WORK" ]; then
        echo "arm64-smoke: kept $WORK (logs in $WORK/logs)"
    fi
    print_times
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@", logging its output with the time of each line to $WORK/logs/NAME.log; on failure
# prints the log's end.
logged() {
    local name=$1 line
    shift
    if ! "$@" 2>&1 | while IFS= read -r line || [ -n "$line" ]; do printf '%(%T)T %s\n' -1 "$line"; done \
        >"$WORK/logs/$name.log"; then
        echo "arm64-smoke: $name failed; the end of $WORK/logs/$name.log:" >&2
        tail -n 40 "$WORK/logs/$name.log" >&2
        return 1
    fi
}

# --- the host's tools ---------------------------------------------------------------------------
phase "host tools and binfmt"
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
        die "could not install ${missing[*]}"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        cannot "could not mount binfmt_misc on /proc/sys/fs/binfmt_misc"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 ||
        update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
    cannot "qemu's aarch64 interpreter is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"
# F: the kernel opens the interpreter now, so the arm64 root needs no copy of it
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
    cannot "qemu-aarch64's binfmt entry lacks the F flag; the chroot would not find the interpreter"
log "$(/usr/bin/qemu-aarch64-static --version | head -n 1), CPU $CPU"
cpus=$(/usr/bin/qemu-aarch64-static -cpu help || true) # (its status is 1)
grep -x "  $CPU" <<<"$cpus" >/dev/null ||
    die "qemu does not know the CPU $CPU (qemu-aarch64-static -cpu help)"

if [ -z "$MIRROR" ]; then
    # the host's own Debian mirror (deb822 .sources or one-line .list), not the security archive
    MIRROR=$({
        grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | cut -d: -f2- | tr ' ' '\n'
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            sed 's/\[[^]]*\]//' | awk '{ print $2 }'
    } | grep -E '^https?://.*/debian/?$' | head -n 1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

phase "empty the work directory"
empty_workdir
mkdir -p "$WORK/logs"
: >"$WORK/empty.toml" # the built-in defaults, whatever configuration the host has

# run_scenes LABEL OUT MODELS STATE CONFIG COMMAND...: runs every scene with COMMAND (the
# recorder, started in the top directory of a copy of the project, so that the scenes' paths and
# thus the sidecars' "source" are the same on both sides). Its recordings go to OUT/SCENE; the
# paths are as COMMAND sees them.
run_scenes() {
    local label=$1 out=$2 models=$3 state=$4 config=$5
    shift 5
    local entry scene model start
    for entry in "${SCENES[@]}"; do
        read -r scene model <<<"$entry"
        start=$SECONDS
        "$@" run --config "$config" --source "file:tests/audio/$scene.wav" --model "$model" \
            --recordings "$out/$scene" --models-dir "$models" --state-dir "$state/$scene" \
            --runtime-dir "$state/$scene/run" --log-level info ||
            die "$label: recorder run on $scene with $model failed"
        log "$label: $scene ($model) in $((SECONDS - start)) s"
    done
}

# --- the reference: x86-64 ----------------------------------------------------------------------
phase "x86-64 reference scenes"
mkdir -p "$WORK/x86-home"
x86() {
    (cd "$REPO" && env -i PATH=/usr/bin:/bin HOME="$WORK/x86-home" LANG=C.UTF-8 \
        timeout 300 "$X86_VENV/bin/recorder" "$@")
}
run_scenes x86-64 "$WORK/x86" "$MODELS" "$WORK/x86-state" "$WORK/empty.toml" x86

# --- the arm64 root -----------------------------------------------------------------------------
phase "unpack $SUITE arm64"
log "mirror $MIRROR"
# The packages are unpacked, not installed (mmdebstrap's extract variant: no maintainer script
# runs, so nothing is emulated and it takes seconds where debootstrap takes minutes). What the
# scripts would have made and the recorder needs is made here: /bin/sh, the users and groups,
# the dynamic linker's cache. No ca-certificates: pip uses the host's certificates (below).
for attempt in 1 2; do
    if logged unpack mmdebstrap --mode=root --arch=arm64 --variant=extract \
        --include=python3,python3-venv,coreutils,dash,libc-bin,base-passwd,libstdc++6,libgcc-s1 \
        "$SUITE" "$ROOT" "$MIRROR"; then
        break
    fi
    [ "$attempt" = 1 ] || die "mmdebstrap failed twice"
    log "mmdebstrap failed; once more from scratch"
    unmount_all || die "could not unmount everything under $ROOT"
    rm -rf --one-file-system "$ROOT"
done
mkdir -p "$ROOT/proc" "$ROOT/sys"
[ -e "$ROOT/bin/sh" ] || ln -s dash "$ROOT/bin/sh"
cp "$ROOT/usr/share/base-passwd/passwd.master" "$ROOT/etc/passwd"
cp "$ROOT/usr/share/base-passwd/group.master" "$ROOT/etc/group"
chroot "$ROOT" /sbin/ldconfig 2>"$WORK/logs/chroot.log" ||
    cannot "chroot into the arm64 root failed: $(head -n 1 "$WORK/logs/chroot.log")"
[ "$(chroot "$ROOT" /bin/uname -m)" = aarch64 ] || die "the root does not run as aarch64"
log "$(chroot "$ROOT" /usr/bin/python3 --version) on $(chroot "$ROOT" /bin/uname -m)"

# A Raspberry Pi 4 Model B's /proc/cpuinfo (64-bit Raspberry Pi OS), in place of the host's text
for cpu in 0 1 2 3; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
    printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done >"$WORK/cpuinfo"
cat >>"$WORK/cpuinfo" <<'EOF'
Hardware	: BCM2835
Revision	: c03111
Serial		: 10000000abcdef01
Model		: Raspberry Pi 4 Model B Rev 1.1
EOF
mount -t proc proc "$ROOT/proc" || cannot "could not mount /proc in the arm64 root"
mount --bind "$WORK/cpuinfo" "$ROOT/proc/cpuinfo" || cannot "could not bind-mount a cpuinfo"
# onnxruntime's CPU detection also reads /sys/devices/system/cpu (it warns without it)
mount -t sysfs -o ro sysfs "$ROOT/sys" || cannot "could not mount /sys in the arm64 root"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp -L /etc/hosts "$ROOT/etc/hosts"

# --- the host's pip configuration in the root ---------------------------------------------------
phase "pip install (aarch64 wheels)"
# The variables that configure pip and its TLS and proxies, passed on to pip in the root.
declare -a PASS_ENV=()
while IFS= read -r name; do
    PASS_ENV+=("$name=${!name}")
done < <(compgen -e | grep -E '^(PIP_[A-Z0-9_]+|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|(https?|no|all|HTTPS?|NO|ALL)_(proxy|PROXY)|XDG_CONFIG_DIRS|XDG_CONFIG_HOME)$' || true)
# pip's configuration files, at the same paths (HOME is the host's in the root too)
for f in /etc/pip.conf /etc/xdg/pip/pip.conf "${PIP_CONFIG_FILE:-}" \
    "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" "$HOME/.pip/pip.conf" \
    $(for d in ${XDG_CONFIG_DIRS//:/ }; do echo "$d/pip/pip.conf"; done); do
    if [ -n "$f" ] && [ -f "$f" ]; then
        mkdir -p "$ROOT$(dirname "$f")"
        cp -L "$f" "$ROOT$f"
        log "pip configuration $f"
    fi
done
# The local files and directories that configuration names (certificates, constraints,
# find-links directories, file:// indexes): files are copied, directories bind-mounted
# read-only. A file:// index's simple/ pages link to ../../files/, so its parent is mounted.
declare -a BIND_DIRS=() COPY_FILES=()
while IFS= read -r value; do
    value=${value#file://}
    case $value in /?*) ;; *) continue ;; esac
    value=${value%/}
    if [ -d "$value" ]; then
        [ "$(basename "$value")" = simple ] && value=$(dirname "$value")
        [ "$(dirname "$value")" != / ] || { log "not mounting top-level $value"; continue; }
        BIND_DIRS+=("$value")
    elif [ -f "$value" ]; then
        COPY_FILES+=("$value")
    fi
done < <({
    "$X86_VENV/bin/python" -m pip config list 2>/dev/null | sed -E "s/^[^=]*=//; s/^'(.*)'$/\1/"
    printf '%s\n' /etc/ssl/certs/ca-certificates.crt "${SSL_CERT_FILE:-}" "${SSL_CERT_DIR:-}" \
        "${REQUESTS_CA_BUNDLE:-}"
} | tr ' ' '\n' | sort -u)
for f in ${COPY_FILES[@]+"${COPY_FILES[@]}"}; do
    for d in ${BIND_DIRS[@]+"${BIND_DIRS[@]}"}; do
        case $f in "$d"/*) continue 2 ;; esac
    done
    mkdir -p "$ROOT$(dirname "$f")"
    cp -L "$f" "$ROOT$f"
    log "copied $f"
done
for d in ${BIND_DIRS[@]+"${BIND_DIRS[@]}"}; do
    mkdir -p "$ROOT$d"
    mount --bind -o ro "$d" "$ROOT$d"
    log "mounted $d read-only"
done

# The project: the checkout's files (tracked and untracked, not ignored), and the models.
mkdir -p "$ROOT/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        grep -zv -E '^(models|\.venv[^/]*)(/|$)' |
        tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$ROOT/src" -xf -
else
    tar -C "$REPO" --exclude=./.git --exclude='./.venv*' --exclude=./models -cf - . |
        tar -C "$ROOT/src" -xf -
fi
cp -rL "$MODELS" "$ROOT/src/models"
# the releases of the x86 venv, as constraints (not pip, setuptools, wheel or the project)
"$X86_VENV/bin/python" -m pip list --format=freeze --exclude-editable 2>/dev/null |
    grep -v -i -E '^(pip|setuptools|wheel|wakeword-recorder|recorder)==' \
        >"$ROOT/tmp/x86-versions.txt" || true

arm() {
    chroot "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME="$HOME" LANG=C.UTF-8 QEMU_CPU="$CPU" \
        ${PASS_ENV[@]+"${PASS_ENV[@]}"} "$@"
}
# The project's wheel (pure Python, the same on every architecture) is built here, as the
# package index would serve it; pip runs in the root from Debian's own pip wheel, in a venv made
# without ensurepip (whose emulated install of pip takes most of a minute).
logged wheel "$X86_VENV/bin/python" -m pip wheel --no-deps --no-input -w "$ROOT/tmp/dist" \
    "$ROOT/src" || die "could not build the project's wheel"
wheel=$(cd "$ROOT/tmp/dist" && ls wakeword_recorder-*.whl)
pip_wheel=$(cd "$ROOT" && ls usr/share/python-wheels/pip-*.whl)
logged venv arm python3 -m venv --without-pip /opt/venv || die "python3 -m venv failed in the root"
for attempt in 1 2; do
    # --no-compile: byte-compiling every module of numpy and onnxruntime under emulation takes
    # longer than the scenes; the modules the daemon imports are compiled when it first runs
    if logged pip arm /opt/venv/bin/python "/$pip_wheel/pip" install --no-input --no-compile \
        --only-binary=:all: -c /tmp/x86-versions.txt "/tmp/dist/$wheel[micro,crypto]"; then
        break
    fi
    [ "$attempt" = 1 ] || die "pip install failed twice"
    log "pip install failed; once more"
done
versions() {
    "$@" -c 'import importlib.metadata as m, platform, sys
import onnxruntime, pymicro_wakeword, pyrage  # the native wheels load
names = ("wakeword-recorder", "numpy", "onnxruntime", "webrtcvad-wheels", "soxr",
         "pymicro-wakeword", "pymicro-features", "pyrage")
print(platform.machine(), "Python", sys.version.split()[0],
      " ".join(f"{n}=={m.version(n)}" for n in names))'
}
v=$(versions "$X86_VENV/bin/python" 2>&1) || v="(not all of these load: ${v##*$'\n'})"
log "x86-64: $v"
v=$(versions arm /opt/venv/bin/python) || die "the aarch64 wheels do not load in the root"
log "arm64:  $v"

# --- the same scenes on arm64 -------------------------------------------------------------------
phase "arm64 scenes (emulated)"
: >"$ROOT/tmp/empty.toml"
arm_recorder() { arm /usr/bin/env -C /src timeout 900 /opt/venv/bin/recorder "$@"; }
run_scenes arm64 /out /src/models /tmp/state /tmp/empty.toml arm_recorder

# --- compare ------------------------------------------------------------------------------------
phase "compare"
if "$X86_VENV/bin/python" "$REPO/scripts/arm64_smoke_compare.py" "$WORK/x86" "$ROOT/out"; then
    log "the arm64 recordings are identical to the x86-64 ones"
    STATUS=0
else
    die "the arm64 recordings differ from the x86-64 ones"
fi
