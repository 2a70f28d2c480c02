"""Fixtures of the Qemu plugin tests: the plugin in-process, the real qemu, a tiny guest, a real VPCS peer.

Missing programs skip the tests that need them, with the package to install, except under CI (`CI` set) where they
fail: CI installs qemu-system-x86, qemu-utils, busybox-static, cpio, cpulimit and vpcs.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import gns3_qemu.plugin
import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from gns3_qemu import guest as guest_builder  # noqa: E402
from qemu_helpers import SerialConsole  # noqa: E402,F401

from gns3core.testing import require  # noqa: E402
from gns3core.testing.notifications import NotificationStream
from gns3core.testing.ports import free_tcp_port
from gns3core.testing.vpcs import VPCSProcess  # noqa: E402


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_qemu.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


@pytest.fixture
def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    require(path is not None, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    require(shutil.which("qemu-img") is not None, "qemu-img is not installed (apt-get install qemu-utils)")
    return str(path)


@pytest.fixture(scope="session")
def guest_files() -> guest_builder.Guest:
    """The kernel and initramfs, built once and cached in ~/.cache/gns3core-tests/qemu-guest/."""
    try:
        return guest_builder.build()
    except guest_builder.GuestUnavailable as exc:
        require(False, f"the test guest cannot be built: {exc} (needs apt, busybox-static, cpio)")
        raise


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    """images_path/QEMU of the in-process server (see gns3core.testing.fixtures.gns3_config)."""
    path = tmp_path / "images" / "QEMU"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def guest(guest_files: guest_builder.Guest, images_dir: Path, qemu_binary: str) -> dict[str, str]:
    """The guest's files placed in the server's image directory; returns the VM fields naming them."""
    for source, name in ((guest_files.kernel, "vmlinuz"), (guest_files.initrd, "initrd.gz")):
        target = images_dir / name
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return {"kernel_image": "vmlinuz", "initrd": "initrd.gz"}


def free_udp_pair() -> tuple[int, int]:
    """Two UDP ports free on 127.0.0.1, the second with port+9 free too (vpcs 0.5b2 binds lport+9 as well)."""
    ports: list[int] = []
    while len(ports) < 2:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port in ports or port + 9 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as extra:
            try:
                extra.bind(("0.0.0.0", port + 9))
            except OSError:
                continue
        ports.append(port)
    return ports[0], ports[1]


@pytest.fixture
def vpcs_peer(tmp_path: Path) -> Iterator[VPCSProcess]:
    """A real vpcs with IP 10.0.0.1/24 at the other end of a UDP tunnel (started directly, no plugin)."""
    require(shutil.which("vpcs") is not None, "vpcs is not installed (apt-get install vpcs)")
    vpcs_port, qemu_port = free_udp_pair()
    peer = VPCSProcess(tmp_path / "vpcs", free_tcp_port(), vpcs_port, qemu_port, startup=["ip 10.0.0.1 24"])
    peer.start()
    try:
        peer.wait_console(5)
        yield peer
    finally:
        peer.stop()


@pytest_asyncio.fixture
async def notifications(api, project) -> AsyncIterator[NotificationStream]:
    async with NotificationStream(api, project["project_id"]) as stream:
        yield stream
