"""Tests of the VirtualBox plugin against the VBoxManage stand-in (VirtualBox cannot be installed here).

The server is pointed at the stand-in through the configuration (`[VirtualBox] vboxmanage_path`), as a user points
it at a VirtualBox installed elsewhere; the stand-in keeps its state in the test's own $VBOX_USER_HOME.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gns3_virtualbox.plugin
import pytest
from vbox_lab import BASE_VM, StandIn, private_port_ranges


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


@pytest.fixture
def gns3_config_overrides(standin: StandIn, state_check_interval: str) -> dict[str, dict[str, str]]:
    return {"VirtualBox": {"vboxmanage_path": standin.program, "state_check_interval": state_check_interval},
            "Server": private_port_ranges()}
