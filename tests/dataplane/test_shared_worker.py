"""The shared worker: one process and one poller thread for many bridges, replaced when killed, nothing left behind
(what a shared bridge does alone is tested with the other process bridges, in test_process.py)."""

from __future__ import annotations

import os
import signal

import pytest
from dataplane_helpers import UDPPeer
from test_process import alive

from gns3core.dataplane import DataPlane, DataPlaneError, UDPEndpoint


@pytest.mark.asyncio
async def test_many_bridges_share_one_worker(tmp_path):
    plane = DataPlane()
    pairs = [(UDPPeer(), UDPPeer()) for _ in range(40)]
    bridges = []
    try:
        for index, (left, right) in enumerate(pairs):
            bridges.append(await plane.create_bridge(f"b{index}", UDPEndpoint(0, "127.0.0.1", left.port),
                                                     UDPEndpoint(0, "127.0.0.1", right.port), process="shared"))
        workers = {bridge.pid for bridge in bridges}
        assert len(workers) == 1
        for index, (left, _right) in enumerate(pairs):
            left.send(f"frame {index}".encode(), bridges[index].endpoints[0].lport)
        for index, (_left, right) in enumerate(pairs):
            assert right.recv_all(limit=1) == [f"frame {index}".encode()]
        # Removing one bridge leaves the others forwarding.
        await plane.remove_bridge("b0")
        left, right = pairs[1]
        left.send(b"still here", bridges[1].endpoints[0].lport)
        assert right.recv_all(limit=1) == [b"still here"]
    finally:
        await plane.close()
        for left, right in pairs:
            left.close()
            right.close()
    assert not any(alive(pid) for pid in workers)


@pytest.mark.asyncio
async def test_shared_worker_killed_is_reported_and_replaced(udp_peers):
    left, right = udp_peers
    plane = DataPlane()
    try:
        first = await plane.create_bridge("k1", UDPEndpoint(0, "127.0.0.1", left.port),
                                          UDPEndpoint(0, "127.0.0.1", right.port), process="shared")
        dead = first.pid
        os.kill(dead, signal.SIGKILL)
        with pytest.raises(DataPlaneError, match="worker process"):
            first.stats  # noqa: B018 - the property asks the worker
        second = await plane.create_bridge("k2", UDPEndpoint(0, "127.0.0.1", right.port),
                                           UDPEndpoint(0, "127.0.0.1", left.port), process="shared")
        assert second.pid != dead and alive(second.pid)
        right.send(b"new worker", second.endpoints[0].lport)
        assert left.recv_all(limit=1) == [b"new worker"]
        await plane.remove_bridge("k1")  # its worker is gone: closing it still releases its ports
    finally:
        await plane.close()
