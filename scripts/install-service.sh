#!/bin/sh
# Install the recorder daemon as a systemd service, from the repository this script is in.
#
#   scripts/install-service.sh [--root DIR] [--prefix DIR] [--user] [--pi]
#   scripts/install-service.sh --uninstall [--purge] [--root DIR] [--prefix DIR] [--user]
#
# System service (default; as root):
#   PREFIX/venv       a venv with the package pip-installed from this repository (non-editable)
#   /var/lib/recorder/models   the verified .onnx files of the package's model manifest
#   /etc/systemd/system/recorder.service   config/recorder.service, enabled
#   /etc/recorder/recorder.toml            config/recorder.toml naming the service's files:
#                                          recordings /var/lib/recorder/recordings, state
#                                          /var/lib/recorder, models /var/lib/recorder/models
#                                          (so `sudo recorder ...` uses them); never overwritten
#   /usr/local/bin/recorder                a link to PREFIX/venv/bin/recorder
# PREFIX is /opt/recorder by default. The service runs as a transient user (DynamicUser=yes),
# so no account is created; it joins the group "audio" for /dev/snd.
#
# --pi: also the `pi` extra (gpiozero, lgpio, spidev) and, for the system service, the drop-in
# config/recorder.service.d/pi.conf that lets it use GPIO and SPI for the lights.
#
# --uninstall: stop and disable the service, remove the unit, its drop-ins, the link, the venv,
# the models and the engine's cache; the config and the recordings stay, unless --purge.
#
# --user: a user service (`systemctl --user`), for desktops where PipeWire or PulseAudio owns
# the microphone: PREFIX is ~/.local/share/recorder, the config ~/.config/recorder/recorder.toml,
# the unit ~/.config/systemd/user/recorder.service, the models PREFIX/models (named in the
# config), the recordings ~/.local/share/recorder/recordings, the link ~/.local/bin/recorder.
#
# --root DIR puts every file under DIR (like DESTDIR; default /), for an image being built or
# a test; the unit and config name the final paths, without DIR. The venv itself is made at
# DIR/PREFIX/venv and its scripts refer to that path, so it runs there and not after DIR is
# moved to /. With DIR = / and systemd running, the service is also (re)started.
#
# Idempotent: a second run updates the package, the models and the unit, keeps the config.
# Environment: PYTHON (default python3, 3.11 or newer).
set -eu

PROG=install-service.sh
die() {
    echo "$PROG: $*" >&2
    exit 2
}
say() {
    echo "$PROG: $*"
}

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=/
PREFIX=
USER_MODE=0
PI=0
UNINSTALL=0
PURGE=0
USAGE="usage: $PROG [--root DIR] [--prefix DIR] [--user] [--pi] | --uninstall [--purge] ..."

while [ $# -gt 0 ]; do
    case $1 in
        --root)
            if [ $# -lt 2 ] || [ -z "$2" ]; then die "--root needs a directory ($USAGE)"; fi
            ROOT=$2
            shift 2
            ;;
        --root=?*) ROOT=${1#--root=}; shift ;;
        --prefix)
            if [ $# -lt 2 ] || [ -z "$2" ]; then die "--prefix needs a directory ($USAGE)"; fi
            PREFIX=$2
            shift 2
            ;;
        --prefix=?*) PREFIX=${1#--prefix=}; shift ;;
        --user) USER_MODE=1; shift ;;
        --pi) PI=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h | --help) echo "$USAGE"; exit 0 ;;
        *) die "unknown argument '$1' ($USAGE)" ;;
    esac
done

[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall ($USAGE)"
[ "$PI" = 0 ] || [ "$UNINSTALL" = 0 ] || die "--pi and --uninstall do not go together"
umask 022
PYTHON=${PYTHON:-python3}

# --- paths -------------------------------------------------------------------------------
case $ROOT in
    /*) ;;
    *) die "--root must be an absolute path, got '$ROOT'" ;;
esac
if [ "$USER_MODE" = 1 ]; then
    [ -n "${HOME:-}" ] || die "--user needs HOME to be set"
    CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
    DEFAULT_PREFIX=$HOME/.local/share/recorder
    UNIT_SRC=$REPO/config/recorder-user.service
    UNIT_DIR=$CONFIG_HOME/systemd/user
    CONFIG_DIR=$CONFIG_HOME/recorder
    # Literally "~": the daemon expands it, so the config stays right for its user.
    # shellcheck disable=SC2088
    RECORDINGS='~/.local/share/recorder/recordings'
    RECORDINGS_DIR=$HOME/.local/share/recorder/recordings
    STATE_DIRS="$HOME/.local/share/recorder/recordings $HOME/.local/state/recorder"
    CACHE_DIRS="${XDG_CACHE_HOME:-$HOME/.cache}/recorder"
    BIN_DIR=$HOME/.local/bin
    MODELS_DIR=
    STATE_DIR=
    WANTS=default.target.wants
else
    DEFAULT_PREFIX=/opt/recorder
    UNIT_SRC=$REPO/config/recorder.service
    UNIT_DIR=/etc/systemd/system
    CONFIG_DIR=/etc/recorder
    RECORDINGS=/var/lib/recorder/recordings
    # With DynamicUser=yes, /var/lib/recorder is a link into /var/lib/private.
    STATE_DIRS="/var/lib/recorder /var/lib/private/recorder"
    CACHE_DIRS="/var/cache/recorder /var/cache/private/recorder"  # CacheDirectory=: the built graph
    BIN_DIR=/usr/local/bin
    # The service's StateDirectory= (systemd moves it under /var/lib/private for DynamicUser=).
    MODELS_DIR=/var/lib/recorder/models
    # The service's StateDirectory= ($STATE_DIRECTORY): the audit log, the mute switch.
    STATE_DIR=/var/lib/recorder
    WANTS=multi-user.target.wants
fi
PREFIX=${PREFIX:-$DEFAULT_PREFIX}
case $PREFIX in
    /*) ;;
    *) die "--prefix must be an absolute path, got '$PREFIX'" ;;
esac
PREFIX=${PREFIX%/}
# The prefix is written into the unit file unquoted: keep it to plain path characters.
case $PREFIX in
    *[!A-Za-z0-9._/+-]*) die "--prefix may only hold letters, digits and . _ / + -: '$PREFIX'" ;;
esac
[ -n "$PREFIX" ] || die "--prefix must not be /"
if [ "$USER_MODE" = 0 ]; then
    case $PREFIX/ in
        /home/* | /root/* | /run/user/* | /tmp/* | /var/tmp/*)
            die "--prefix $PREFIX would be hidden from the service (ProtectHome=, PrivateTmp=)" ;;
    esac
fi

mkdir -p "$ROOT" 2>/dev/null || die "cannot create the --root directory $ROOT"
R=$(cd "$ROOT" && pwd)
[ "$R" = / ] && R=

VENV=$R$PREFIX/venv
MODELS=$R${MODELS_DIR:-$PREFIX/models}
MANIFEST=$REPO/recorder/manifest.toml
UNIT=$R$UNIT_DIR/recorder.service
DROPIN_DIR=$R$UNIT_DIR/recorder.service.d
CONFIG=$R$CONFIG_DIR/recorder.toml
LINK=$R$BIN_DIR/recorder

# --- uninstall ------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
    if [ "$USER_MODE" = 0 ] && [ -z "$R" ] && [ "$(id -u)" != 0 ]; then
        die "uninstalling the system service needs root (or use --user, or --root DIR)"
    fi
    if [ -z "$R" ] && [ "$USER_MODE" = 0 ] && [ -d /run/systemd/system ]; then
        systemctl disable --now recorder.service 2>/dev/null || true
    elif [ -z "$R" ] && [ "$USER_MODE" = 1 ] && [ -S "${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/systemd/private" ]; then
        systemctl --user disable --now recorder.service 2>/dev/null || true
    fi
    rm -f "$R$UNIT_DIR/$WANTS/recorder.service"
    rm -f "$UNIT"
    rm -rf "$DROPIN_DIR"
    if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$PREFIX/venv/bin/recorder" ]; then
        rm -f "$LINK"
    fi
    rm -rf "$R$PREFIX/venv" "$MODELS"
    for d in $CACHE_DIRS; do rm -rf "$R$d"; done  # derived from the models
    rmdir "$R$PREFIX" 2>/dev/null || true
    say "removed the service, the link, $PREFIX/venv, the models ${MODELS#"$R"} and the cache"
    if [ "$PURGE" = 1 ]; then
        rm -f "$CONFIG"
        rmdir "$R$CONFIG_DIR" 2>/dev/null || true
        for d in $STATE_DIRS; do rm -rf "$R$d"; done
        say "purged the config and the recordings ($STATE_DIRS)"
    else
        say "kept the config $CONFIG and the recordings in $R$RECORDINGS (--purge removes them)"
    fi
    if [ -z "$R" ] && [ "$USER_MODE" = 0 ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    exit 0
fi

if [ "$USER_MODE" = 0 ] && [ -z "$R" ] && [ "$(id -u)" != 0 ]; then
    die "installing the system service needs root (or use --user, or --root DIR)"
fi
for f in "$UNIT_SRC" "$REPO/config/recorder.toml" "$MANIFEST" \
    "$REPO/pyproject.toml"; do
    [ -f "$f" ] || die "$f is missing: run this script from a recorder checkout"
done
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    die "Python 3.11 or newer is needed as \$PYTHON ($PYTHON)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/recorder-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# --- the venv and the package ---------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null; then
    say "venv $VENV exists"
else
    "$PYTHON" -m venv "$VENV" || die "could not create the venv $VENV"
    say "created venv $VENV"
fi
# Build from a copy of the sources, so that the checkout gets no build/ or egg-info and a
# concurrent edit cannot half-change what is built.
mkdir "$TMP/src"
tar -C "$REPO" -cf - --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=./models --exclude=./tests --exclude=./recordings \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache . |
    tar -C "$TMP/src" -xf -
EXTRA=
[ "$PI" = 1 ] && EXTRA="[pi]"
# The distribution is wakeword-recorder; a venv from when it was called recorder loses that one
# first (both own the same files).
"$VENV/bin/python" -m pip uninstall --quiet --yes recorder 2>/dev/null || true
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$TMP/src$EXTRA" ||
    die "pip could not install the package${EXTRA:+ with $EXTRA} from $REPO into $VENV"
say "installed $("$VENV/bin/recorder" --version) into $VENV"

# --- models -------------------------------------------------------------------------------
mkdir -p "$MODELS"
copied=0
# shellcheck disable=SC2013 # the names are matched without blanks
for name in $(sed -n 's/^file *= *"\([A-Za-z0-9._-]*\)".*/\1/p' "$MANIFEST"); do
    src=$REPO/models/$name
    # Files already in the checkout save a download; `models fetch` checks every hash below
    # and replaces any file that does not match.
    if [ -f "$src" ] && ! cmp -s "$src" "$MODELS/$name"; then
        install -m 0644 "$src" "$MODELS/$name"
        copied=$((copied + 1))
    fi
done
[ "$copied" = 0 ] || say "copied $copied model file(s) from $REPO/models"
"$VENV/bin/recorder" models fetch --models-dir "$MODELS" ||
    die "the models in $MODELS could not be fetched or verified"

# --- the unit -----------------------------------------------------------------------------
mkdir -p "$R$UNIT_DIR"
if [ "$PREFIX" = "$DEFAULT_PREFIX" ]; then
    cp "$UNIT_SRC" "$TMP/recorder.service"
elif [ "$USER_MODE" = 1 ]; then
    sed -e "s#%h/.local/share/recorder/venv/#$PREFIX/venv/#g" \
        -e "s#%h/.local/share/recorder/models#$PREFIX/models#g" "$UNIT_SRC" >"$TMP/recorder.service"
else
    sed "s#/opt/recorder/#$PREFIX/#g" "$UNIT_SRC" >"$TMP/recorder.service"
fi
if cmp -s "$TMP/recorder.service" "$UNIT"; then
    say "unit $UNIT is up to date"
else
    install -m 0644 "$TMP/recorder.service" "$UNIT"
    say "installed unit $UNIT"
fi

if [ "$PI" = 1 ] && [ "$USER_MODE" = 0 ]; then
    mkdir -p "$DROPIN_DIR"
    install -m 0644 "$REPO/config/recorder.service.d/pi.conf" "$DROPIN_DIR/pi.conf"
    say "installed $DROPIN_DIR/pi.conf (GPIO and SPI for the lights)"
fi

# --- the command on PATH ----------------------------------------------------------------------
mkdir -p "$R$BIN_DIR"
if [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
    say "warning: $LINK exists and is not a link: left alone"
else
    ln -sfn "$PREFIX/venv/bin/recorder" "$LINK"
    say "linked $LINK -> $PREFIX/venv/bin/recorder"
fi

# --- the config (never overwritten) ---------------------------------------------------------
check_config() {
    "$VENV/bin/python" -I -c 'import sys
from pathlib import Path
from recorder import config
from recorder.errors import RecorderError
try:
    config.load(Path(sys.argv[1]))
except RecorderError as e:
    sys.exit(str(e))' "$1"
}
mkdir -p "$R$CONFIG_DIR"
if [ -e "$CONFIG" ]; then
    say "kept the existing config $CONFIG"
    check_config "$CONFIG" || say "warning: $CONFIG does not load; the service will not start"
    for key in ${STATE_DIR:+state_dir} models_dir; do
        grep -q "^[ $(printf '\t')]*$key[ $(printf '\t')]*=" "$CONFIG" ||
            say "note: $CONFIG names no $key: add it (see config/recorder.toml) so that commands run with sudo use the service's files"
    done
else
    # config/recorder.toml with the service's files named: [storage] directory (and, for the
    # system service, state_dir) and [wake] models_dir, each as "section<TAB>key<TAB>value<TAB>why".
    TAB=$(printf '\t')
    SETTINGS="storage${TAB}directory${TAB}$RECORDINGS${TAB}the one directory the service may write to."
    if [ -n "$STATE_DIR" ]; then
        SETTINGS="$SETTINGS
storage${TAB}state_dir${TAB}$STATE_DIR${TAB}the service's state directory (audit log, mute switch, calibration)."
    fi
    models_setting=${MODELS#"$R"}
    if [ "$USER_MODE" = 1 ]; then
        case $models_setting in "$HOME"/*) models_setting="~${models_setting#"$HOME"}" ;; esac
    fi
    SETTINGS="$SETTINGS
wake${TAB}models_dir${TAB}$models_setting${TAB}the models this script installed and verified."
    awk -v settings="$SETTINGS" '
        BEGIN {
            n = split(settings, rows, "\n")
            for (i = 1; i <= n; i++) {
                split(rows[i], f, "\t")
                sec[i] = f[1]; key[i] = f[2]; val[i] = f[3]; why[i] = f[4]
            }
        }
        function put(i) {
            print "# Set by install-service.sh: " why[i]
            print key[i] " = \"" val[i] "\""
            done[i] = 1
        }
        function rest(s,   i, any) {
            for (i = 1; i <= n; i++) if (sec[i] == s && !done[i]) { put(i); any = 1 }
            return any
        }
        /^[ \t]*\[/ {
            if (rest(section)) print ""
            section = $0
            sub(/^[ \t]*\[[ \t]*/, "", section)
            sub(/[ \t]*\].*$/, "", section)
            seen[section] = 1
        }
        {
            for (i = 1; i <= n; i++) {
                # the key, or its commented-out example ("# key = ..."), replaced in place
                if (section == sec[i] && !done[i] && $0 ~ "^[ \t]*(#[ \t]*)?" key[i] "[ \t]*=") {
                    put(i)
                    next
                }
            }
            print
        }
        END {
            rest(section)
            for (i = 1; i <= n; i++) {
                if (!done[i]) {
                    if (!seen[sec[i]]) { print "\n[" sec[i] "]"; seen[sec[i]] = 1 }
                    put(i)
                }
            }
        }
    ' "$REPO/config/recorder.toml" >"$TMP/recorder.toml"
    check_config "$TMP/recorder.toml" || die "the generated config does not load"
    install -m 0644 "$TMP/recorder.toml" "$CONFIG.new"
    mv -f "$CONFIG.new" "$CONFIG"
    say "wrote config $CONFIG (recordings in $RECORDINGS${STATE_DIR:+, state in $STATE_DIR}, models in $models_setting)"
fi
if [ "$USER_MODE" = 1 ]; then
    # The user unit's sandbox makes only this directory writable; it must exist.
    mkdir -p "$R$RECORDINGS_DIR"
    chmod 0700 "$R$RECORDINGS_DIR"
fi

# --- enable, and (re)start where systemd runs ------------------------------------------------
if [ "$USER_MODE" = 1 ]; then
    # What `systemctl --user enable` does; done by hand because it has no --root.
    mkdir -p "$R$UNIT_DIR/$WANTS"
    ln -sfn "$UNIT_DIR/recorder.service" "$R$UNIT_DIR/$WANTS/recorder.service"
    say "enabled recorder.service for $WANTS"
    runtime=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}
    if [ -z "$R" ] && [ -S "$runtime/systemd/private" ]; then
        systemctl --user daemon-reload
        systemctl --user restart recorder.service
        say "restarted the user service (journalctl --user -u recorder to follow it)"
    else
        say "no user manager to talk to: the service starts at the next login"
    fi
else
    if [ -n "$R" ] && [ -f "$R/etc/group" ] && ! grep -q '^audio:' "$R/etc/group"; then
        say "warning: $R/etc/group has no group 'audio' (SupplementaryGroups=audio)"
    elif [ -z "$R" ] && ! getent group audio >/dev/null; then
        say "warning: there is no group 'audio' (SupplementaryGroups=audio): create it"
    fi
    command -v systemctl >/dev/null || die "systemctl not found: is this a systemd system?"
    systemctl --root="${R:-/}" enable recorder.service 2>"$TMP/enable.log" || {
        cat "$TMP/enable.log" >&2
        die "systemctl could not enable recorder.service"
    }
    say "enabled recorder.service for $WANTS"
    if [ -z "$R" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl restart recorder.service
        say "restarted recorder.service (journalctl -u recorder to follow it)"
    elif [ -z "$R" ]; then
        say "systemd is not running here: the service starts at the next boot"
    fi
fi

if [ "$USER_MODE" = 1 ]; then
    cat <<NEXT
$PROG: next:
  loginctl enable-linger \$USER     # keep the service running while you are logged out
  systemctl --user status recorder
  journalctl --user -u recorder -f
  recorder status; recorder list    # ($BIN_DIR must be on PATH)
  edit $CONFIG_DIR/recorder.toml, then: systemctl --user reload recorder
NEXT
else
    cat <<NEXT
$PROG: next:
  sudo systemctl status recorder
  journalctl -u recorder -f
  sudo recorder status; sudo recorder list
  sudo recorder doctor
  edit $CONFIG_DIR/recorder.toml, then: sudo systemctl reload recorder
NEXT
fi
