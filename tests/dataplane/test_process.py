"""Bridges forwarded by a worker process behave like thread bridges and leave no process behind."""

from __future__ import annotations

import os

import pytest
from dataplane_helpers import pcap_records

from gns3core.dataplane import DataPlane, DataPlaneError, Impairments, ProcessBridge, UDPEndpoint


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def thread_names(pid: int) -> list[str]:
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            names.append(comm.read().strip())
    return names


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", [True, "shared"], ids=["own-worker", "shared-worker"])
async def test_process_bridge_forwards_captures_and_impairs(udp_peers, tmp_path, mode):
    """The same behaviour whether the bridge has a worker of its own or the shared worker's poller forwards it."""
    left, right = udp_peers
    plane = DataPlane(process_bridges=mode)
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await plane.create_bridge("proc", a, b)
    pids = [bridge.pid]
    try:
        assert isinstance(bridge, ProcessBridge) and alive(bridge.pid)
        if mode == "shared":  # no relay threads: the poller forwards
            assert not [name for name in thread_names(bridge.pid) if name.startswith("dataplane-proc")]
        path = tmp_path / "cap" / "p.pcap"
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

        # A swap restarts an own worker (the shared one stays); capture continues in the same file and counters
        # carry over.
        await bridge.update_endpoint("b", UDPEndpoint(b.lport, "127.0.0.1", right.port))
        pids.append(bridge.pid)
        if mode == "shared":
            assert pids[0] == pids[1]
        else:
            assert pids[0] != pids[1] and not alive(pids[0])
        left.send(b"after swap", a.lport)
        assert right.recv_all(limit=1) == [b"after swap"]
        stats = bridge.stats
        assert stats["frames_a_to_b"] == 31 and stats["frames_b_to_a"] == 1 and stats["dropped"] == 4
        bridge.stop_capture()
        assert pcap_records(str(path)) == (1, 10 + 1 + 16 + 1)
        with pytest.raises(DataPlaneError, match="Unknown data link type"):
            bridge.start_capture(str(path), "nope")
    finally:
        await plane.close()
    assert not any(alive(pid) for pid in pids)
    assert not a.opened and not b.opened


@pytest.mark.asyncio
async def test_process_bridge_capture_refused(udp_peers, tmp_path):
    left, right = udp_peers
    plane = DataPlane()
    try:
        bridge = await plane.create_bridge("procerr", UDPEndpoint(0, "127.0.0.1", left.port),
                                           UDPEndpoint(0, "127.0.0.1", right.port), process=True)
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(DataPlaneError, match="Cannot write capture file"):
            bridge.start_capture(os.path.join(str(blocker), "x.pcap"))
        assert not bridge.capturing
    finally:
        await plane.close()
