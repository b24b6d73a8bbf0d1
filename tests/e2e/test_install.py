"""install-service.sh --pi and --uninstall [--purge], into a staging root."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO

INSTALLER = REPO / "scripts" / "install-service.sh"


def installer(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["sh", str(INSTALLER), *args], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_install_with_the_pi_lights_then_uninstall_then_purge(tmp_path):
    root = tmp_path / "root"
    out = installer("--root", str(root), "--pi").stdout
    dropin = root / "etc/systemd/system/recorder.service.d/pi.conf"
    assert dropin.read_text() == (REPO / "config/recorder.service.d/pi.conf").read_text()
    assert "DeviceAllow=char-gpiochip rw" in dropin.read_text()
    link = root / "usr/local/bin/recorder"
    assert os.readlink(link) == "/opt/recorder/venv/bin/recorder"  # the final path
    venv_python = root / "opt/recorder/venv/bin/python"
    subprocess.run([str(venv_python), "-I", "-c", "import gpiozero, spidev"], check=True)
    assert "next:" in out and "sudo recorder doctor" in out

    recordings = root / "var/lib/recorder/recordings"
    recordings.mkdir(parents=True)
    (recordings / "kept.wav").write_bytes(b"RIFF")
    config = root / "etc/recorder/recorder.toml"

    out = installer("--root", str(root), "--uninstall").stdout
    for gone in (
        dropin.parent,
        root / "etc/systemd/system/recorder.service",
        root / "etc/systemd/system/multi-user.target.wants/recorder.service",
        root / "opt/recorder",
    ):
        assert not os.path.lexists(gone), gone
    assert not os.path.lexists(link)
    assert config.is_file() and (recordings / "kept.wav").is_file()
    assert "kept the config" in out

    installer("--root", str(root), "--uninstall", "--purge")
    assert not config.exists() and not (root / "var/lib/recorder").exists()


def test_uninstall_leaves_a_foreign_command_alone(tmp_path):
    root = tmp_path / "root"
    link = root / "usr/local/bin/recorder"
    link.parent.mkdir(parents=True)
    link.symlink_to("/usr/bin/something-else")
    installer("--root", str(root), "--uninstall")
    assert os.readlink(link) == "/usr/bin/something-else"


def test_pi_with_uninstall_is_refused(tmp_path):
    proc = subprocess.run(
        ["sh", str(INSTALLER), "--root", str(tmp_path), "--pi", "--uninstall"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
