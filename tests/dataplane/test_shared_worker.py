"""Bridges forwarded by the shared worker: one process and one poller thread for all of them, same behaviour as
thread bridges, nothing left behind."""

from __future__ import annotations

import os
import signal

import pytest
from dataplane_helpers import UDPPeer, pcap_records
from test_process import alive

from gns3core.dataplane import DataPlane, DataPlaneError, Impairments, ProcessBridge, UDPEndpoint


def thread_names(pid: int) -> list[str]:
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            names.append(comm.read().strip())
    return names


@pytest.mark.asyncio
async def test_shared_bridges_forward_capture_impair_and_swap(udp_peers, tmp_path):
    left, right = udp_peers
    plane = DataPlane()
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await plane.create_bridge("shared", a, b, process="shared")
    try:
        assert isinstance(bridge, ProcessBridge) and alive(bridge.pid)
        worker = bridge.pid
        assert not [name for name in thread_names(worker) if name.startswith("dataplane-shared")]  # no relay threads
        path = tmp_path / "cap" / "s.pcap"
        bridge.start_capture(str(path))
        for index in range(10):
            left.send(bytes([index]) * 64, a.lport)
        assert right.recv_all(limit=10) == [bytes([index]) * 64 for index in range(10)]
        right.send(b"r" * 80, b.lport)
        assert left.recv_all(limit=1) == [b"r" * 80]

        bridge.set_impairments(Impairments(drop_every=5))
        for index in range(20):
            left.send(bytes([index]) * 64, a.lport)
        assert len(right.recv_all(timeout=0.3)) == 16
        bridge.set_impairments(Impairments())

        # A swap keeps the same worker; capture and counters go on.
        await bridge.update_endpoint("b", UDPEndpoint(b.lport, "127.0.0.1", right.port))
        assert bridge.pid == worker
        left.send(b"after swap", a.lport)
        assert right.recv_all(limit=1) == [b"after swap"]
        stats = bridge.stats
        assert stats["frames_a_to_b"] == 31 and stats["frames_b_to_a"] == 1 and stats["dropped"] == 4
        bridge.stop_capture()
        assert pcap_records(str(path)) == (1, 10 + 1 + 16 + 1)
    finally:
        await plane.close()
    assert not alive(worker)
    assert not a.opened and not b.opened


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
