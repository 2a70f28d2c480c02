"""VMware tests run against the stand-in VMware installation of standin_host.py (VMware cannot be installed here)
and the VMware plugin only. Each test gets its own stand-in programs, VMnet numbers and home directory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import gns3_vmware.plugin
import pytest
from standin_host import StandinVMware


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinVMware]:
    """The stand-in VMware of this test; VMware's per-user files (inventory, preferences) live in its home."""
    host = StandinVMware(tmp_path / "vmware-host")
    monkeypatch.setenv("HOME", str(host.home))
    monkeypatch.setenv("TMPDIR", str(host.temp_dir))
    monkeypatch.setattr(tempfile, "tempdir", str(host.temp_dir))
    try:
        yield host
        left = host.cleanup()
        assert not left, f"stand-in VM processes left running: {left}"
        assert not host.vmnet_interfaces(), f"VMnet interfaces left: {host.vmnet_interfaces()}"
        assert not list((host.temp_dir / "gns3_vmware").glob("*")), "serial sockets left"
    finally:
        host.cleanup()
        host.release()


@pytest.fixture
def gns3_plugins() -> list:
    return [gns3_vmware.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


@pytest.fixture
def gns3_config_overrides(standin: StandinVMware) -> dict[str, dict[str, str]]:
    return {"VMware": standin.config_section(), "Server": standin.server_section()}
