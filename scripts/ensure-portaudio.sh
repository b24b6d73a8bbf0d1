#!/bin/sh
# Make sure the system's PortAudio library (needed by sounddevice for the microphone) is present.
# Installs it with apt-get when that is possible without a password; otherwise says what to run.
set -e
if ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2'; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PortAudio is missing: install your system's PortAudio v19 package (libportaudio2)." >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "PortAudio is missing: run  sudo apt-get install -y libportaudio2  then try again." >&2
    exit 1
fi
echo "installing libportaudio2 with apt-get"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libportaudio2 >/dev/null
