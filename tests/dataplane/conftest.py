"""Fixtures for the data plane tests: loopback UDP peers, network namespaces and a DataPlane, all cleaned up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from dataplane_helpers import Namespaces, UDPPeer, require_net_admin

from gns3core.dataplane import DataPlane


@pytest_asyncio.fixture
async def dataplane() -> AsyncIterator[DataPlane]:
    """A DataPlane closed after the test, whatever happened, so no relay thread outlives it."""
    plane = DataPlane()
    try:
        yield plane
    finally:
        await plane.close()


@pytest.fixture
def udp_peers() -> Iterator[tuple[UDPPeer, UDPPeer]]:
    """Two loopback UDP peers: one plays side a's emulator, the other side b's."""
    peers = (UDPPeer(), UDPPeer())
    yield peers
    for peer in peers:
        peer.close()


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    """Namespace factory; skips without CAP_NET_ADMIN, removes everything even when the test fails."""
    require_net_admin()
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.cleanup()
