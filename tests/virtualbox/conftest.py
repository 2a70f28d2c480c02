"""Tests of the VirtualBox plugin against the VBoxManage stand-in (VirtualBox cannot be installed here).

The server is pointed at the stand-in through the configuration (`[VirtualBox] vboxmanage_path`), as a user points
it at a VirtualBox installed elsewhere; the stand-in keeps its state in the test's own $VBOX_USER_HOME.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import gns3_virtualbox.plugin
import pytest
from vbox_lab import StandIn

BASE_VM = "VM1"


@pytest.fixture
def gns3_plugins():
    return [gns3_virtualbox.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh stand-in with one base VM (VM1: 256 MB, a SATA disk, NIC 1 'Not attached' as GNS3 users set it).
    No VM process outlives it."""
    home = tmp_path / "vbox-home"
    monkeypatch.setenv("VBOX_USER_HOME", str(home))
    # Serial sockets go to <temp dir>/gns3_vbox: a short private temp dir keeps them under the 108-byte limit.
    pipes = Path(tempfile.mkdtemp(prefix="gvb"))
    monkeypatch.setattr(tempfile, "tempdir", str(pipes))
    lab = StandIn(home)
    lab.pipes = pipes
    lab.create_base_vm(BASE_VM, nics={1: "null"})
    yield lab
    left = lab.kill_leftovers()
    shutil.rmtree(pipes, ignore_errors=True)
    assert not left, f"VM processes left running: {left}"


@pytest.fixture
def state_check_interval() -> str:
    """Slow by default, so the exact VBoxManage calls a request makes are not mixed with state checks."""
    return "60"


def private_port_ranges() -> dict[str, str]:
    """Tunnel and console ports away from the default ranges other suites (and their emulators) use here."""
    udp = 42000 + (os.getpid() % 50) * 100
    console = 7100 + (os.getpid() % 40) * 20
    return {"udp_start_port_range": str(udp), "udp_end_port_range": str(udp + 99),
            "console_start_port_range": str(console), "console_end_port_range": str(console + 19)}


@pytest.fixture
def gns3_config_overrides(standin: StandIn, state_check_interval: str) -> dict[str, dict[str, str]]:
    return {"VirtualBox": {"vboxmanage_path": standin.program, "state_check_interval": state_check_interval},
            "Server": private_port_ranges()}
