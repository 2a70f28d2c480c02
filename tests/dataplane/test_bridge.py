"""Forwarding, endpoint swaps and clean shutdown of UDP/UNIX bridges between loopback sockets."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import threading

import pytest

from gns3core.dataplane import DataPlane, DataPlaneError, UDPEndpoint, UnixEndpoint
from gns3core.testing.ports import udp_port_is_free


def dataplane_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("dataplane-")]


@pytest.mark.asyncio
async def test_udp_bridge_forwards_both_ways(dataplane, udp_peers):
    left, right = udp_peers
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await dataplane.create_bridge("ab", a, b)
    frames = [bytes([i]) * (60 + i) for i in range(20)]
    for frame in frames:
        left.send(frame, a.lport)
    assert right.recv_all(limit=20) == frames
    right.send(b"\x01" * 1400, b.lport)
    assert left.recv_all(limit=1) == [b"\x01" * 1400]
    stats = bridge.stats
    assert stats["frames_a_to_b"] == 20 and stats["bytes_a_to_b"] == sum(map(len, frames))
    assert stats["frames_b_to_a"] == 1 and stats["bytes_b_to_a"] == 1400
    assert stats["dropped"] == 0 and stats["errors"] == 0
    assert dataplane.get_bridge("ab") is bridge


@pytest.mark.asyncio
async def test_update_endpoint_keeps_other_side(dataplane, udp_peers):
    left, right = udp_peers
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await dataplane.create_bridge("swap", a, b)
    left.send(b"before", a.lport)
    assert right.recv_all(limit=1) == [b"before"]

    # Same local port, new destination: the socket is kept (no "port in use"), frames go to the new peer.
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(2)
    try:
        await bridge.update_endpoint("b", UDPEndpoint(b.lport, "127.0.0.1", other.getsockname()[1]))
        left.send(b"after", a.lport)
        assert other.recv(100) == b"after"
        other.sendto(b"back", ("127.0.0.1", b.lport))
        assert left.recv_all(limit=1) == [b"back"]
    finally:
        other.close()

    # A different kind of endpoint on side b.
    local, remote = f"/tmp/gdp-{os.getpid()}-l.sock", f"/tmp/gdp-{os.getpid()}-r.sock"
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(remote)
    peer.settimeout(2)
    try:
        await bridge.update_endpoint("b", UnixEndpoint(local, remote))
        assert udp_port_is_free(b.lport)
        left.send(b"to-unix", a.lport)
        assert peer.recv(100) == b"to-unix"
        peer.sendto(b"from-unix", local)
        assert left.recv_all(limit=1) == [b"from-unix"]
    finally:
        peer.close()
        os.unlink(remote)
    await dataplane.remove_bridge("swap")
    assert not os.path.exists(local)


@pytest.mark.asyncio
async def test_failed_update_keeps_old_endpoint(dataplane, udp_peers):
    left, right = udp_peers
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await dataplane.create_bridge("keep", a, b)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        with pytest.raises(DataPlaneError, match="already in use"):
            await bridge.update_endpoint("b", UDPEndpoint(busy.getsockname()[1], "127.0.0.1", right.port))
    left.send(b"still-works", a.lport)
    assert right.recv_all(limit=1) == [b"still-works"]
    with pytest.raises(DataPlaneError, match="'a' or 'b'"):
        await bridge.update_endpoint("c", UDPEndpoint(0, "127.0.0.1", 9))


@pytest.mark.asyncio
async def test_close_releases_everything():
    plane = DataPlane()
    baseline = len(dataplane_threads())
    bridges = []
    for index in range(100):
        bridges.append(await plane.create_bridge(
            f"idle{index}", UDPEndpoint(0, "127.0.0.1", 9), UDPEndpoint(0, "127.0.0.1", 9)))
    assert len(dataplane_threads()) == baseline + 200
    # Idle bridges sleep in the kernel: well under a tenth of a core while waiting half a second.
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(0.5)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.05
    ports = [bridge.endpoints[0].lport for bridge in bridges]
    await plane.close()
    assert all(bridge.closed for bridge in bridges)
    assert len(dataplane_threads()) == baseline
    assert all(udp_port_is_free(port) for port in ports)
    assert plane.bridges == {}
    with pytest.raises(DataPlaneError):
        await plane.create_bridge("late", UDPEndpoint(0, "127.0.0.1", 9), UDPEndpoint(0, "127.0.0.1", 9))


@pytest.mark.asyncio
async def test_unix_endpoint_bridge(dataplane, udp_peers, tmp_path):
    left, _right = udp_peers
    local, remote = str(tmp_path / "bridge.sock"), str(tmp_path / "peer.sock")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(remote)
    peer.settimeout(2)
    try:
        a = UDPEndpoint(0, "127.0.0.1", left.port)
        await dataplane.create_bridge("unix", a, UnixEndpoint(local, remote))
        left.send(b"hello", a.lport)
        assert peer.recv(100) == b"hello"
        peer.sendto(b"world", local)
        assert left.recv_all(limit=1) == [b"world"]
        await dataplane.remove_bridge("unix")
        assert not os.path.exists(local)
    finally:
        peer.close()


@pytest.mark.asyncio
async def test_many_bridges_do_not_stall_each_other(dataplane):
    """A bridge whose peer never reads does not hold up the others."""
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for sock in peers:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2)
        endpoints = []
        for index in range(2):
            a = UDPEndpoint(0, "127.0.0.1", peers[2 * index].getsockname()[1])
            b = UDPEndpoint(0, "127.0.0.1", peers[2 * index + 1].getsockname()[1])
            await dataplane.create_bridge(f"m{index}", a, b)
            endpoints.append(a)
        # Flood bridge 0 (its receiver never reads) while bridge 1 carries a single frame.
        flood = b"x" * 1400
        for _ in range(5000):
            peers[0].sendto(flood, ("127.0.0.1", endpoints[0].lport))
        peers[2].sendto(b"ping", ("127.0.0.1", endpoints[1].lport))
        assert peers[3].recv(100) == b"ping"
    finally:
        for sock in peers:
            sock.close()


@pytest.mark.asyncio
async def test_duplicate_and_unknown_bridge_names(dataplane, udp_peers):
    left, right = udp_peers
    await dataplane.create_bridge("dup", UDPEndpoint(0, "127.0.0.1", left.port), UDPEndpoint(0, "127.0.0.1", 9))
    with pytest.raises(DataPlaneError, match="already exists"):
        await dataplane.create_bridge("dup", UDPEndpoint(0, "127.0.0.1", 9), UDPEndpoint(0, "127.0.0.1", 9))
    with pytest.raises(DataPlaneError, match="does not exist"):
        await dataplane.remove_bridge("nope")
    with pytest.raises(DataPlaneError, match="does not exist"):
        dataplane.get_bridge("nope")


@pytest.mark.asyncio
async def test_cancelled_creation_leaves_nothing():
    plane = DataPlane()
    baseline = len(dataplane_threads())
    a = UDPEndpoint(0, "127.0.0.1", 9)
    task = asyncio.ensure_future(plane.create_bridge("cancel", a, UDPEndpoint(0, "127.0.0.1", 9)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await plane.close()
    assert plane.bridges == {}
    assert not a.opened
    assert len(dataplane_threads()) == baseline


@pytest.mark.asyncio
async def test_ipv6_udp_tunnel(dataplane):
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        rx.bind(("::1", 0))
        tx.bind(("::1", 0))
        rx.settimeout(2)
        a = UDPEndpoint(0, "::1", tx.getsockname()[1])
        await dataplane.create_bridge("v6", a, UDPEndpoint(0, "::1", rx.getsockname()[1]))
        tx.sendto(b"over ipv6", ("::1", a.lport))
        assert rx.recv(100) == b"over ipv6"
    finally:
        rx.close()
        tx.close()
