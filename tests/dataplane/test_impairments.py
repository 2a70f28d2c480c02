"""Impairments measurably change traffic sent through a bridge between two loopback UDP sockets."""

from __future__ import annotations

import time

import pytest

from gns3core.dataplane import DataPlaneError, Impairments, UDPEndpoint


async def make_bridge(dataplane, udp_peers, name="imp"):
    left, right = udp_peers
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await dataplane.create_bridge(name, a, b)
    return bridge, left, right, a.lport


def numbered(count: int, size: int = 100) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(count)]


def send_paced(left, port, frames):
    for index, frame in enumerate(frames):
        left.send(frame, port)
        if index % 50 == 49:
            time.sleep(0.002)  # keep well inside socket buffers: losses must come from the impairment only


@pytest.mark.asyncio
async def test_loss_drops_about_half(dataplane, udp_peers):
    bridge, left, right, port = await make_bridge(dataplane, udp_peers)
    bridge.set_impairments(Impairments(loss_percent=50))
    send_paced(left, port, numbered(200))
    received = right.recv_all(timeout=0.3)
    assert 50 <= len(received) <= 150
    assert bridge.stats["dropped_a_to_b"] == 200 - len(received)
    bridge.set_impairments(Impairments())
    send_paced(left, port, numbered(50))
    assert len(right.recv_all(timeout=0.3)) == 50


@pytest.mark.asyncio
async def test_drop_every_nth_is_exact(dataplane, udp_peers):
    bridge, left, right, port = await make_bridge(dataplane, udp_peers)
    bridge.set_impairments(drop_every=4)
    frames = numbered(200)
    send_paced(left, port, frames)
    received = right.recv_all(timeout=0.3)
    assert len(received) == 150
    assert received == [frame for index, frame in enumerate(frames) if (index + 1) % 4]
    assert bridge.stats["dropped"] == 50


@pytest.mark.asyncio
async def test_corruption_flips_a_payload_byte(dataplane, udp_peers):
    bridge, left, right, port = await make_bridge(dataplane, udp_peers)
    bridge.set_impairments(Impairments(corrupt_percent=100))
    frames = numbered(40)
    send_paced(left, port, frames)
    received = right.recv_all(timeout=0.3)
    assert len(received) == 40
    for original, damaged in zip(frames, received, strict=True):
        diffs = [i for i in range(len(original)) if original[i] != damaged[i]]
        assert len(diffs) == 1 and diffs[0] >= 14
        assert damaged[diffs[0]] == original[diffs[0]] ^ 0xFF


@pytest.mark.asyncio
async def test_delay_holds_frames_back(dataplane, udp_peers):
    bridge, left, right, port = await make_bridge(dataplane, udp_peers)
    bridge.set_impairments(Impairments(delay_ms=200))
    left.send(b"late frame", port)
    assert right.recv_all(timeout=0.05) == []
    assert bridge.stats["delayed"] == 1
    assert right.recv_all(timeout=1.0, limit=1) == [b"late frame"]
    # With jitter every frame still arrives; order may change, content does not.
    bridge.set_impairments(Impairments(delay_ms=30, jitter_ms=20))
    frames = numbered(30)
    send_paced(left, port, frames)
    assert sorted(right.recv_all(timeout=0.5)) == sorted(frames)
    # Both directions are delayed.
    right.send(b"reverse", bridge.endpoints[1].lport)
    assert left.recv_all(timeout=1.0, limit=1) == [b"reverse"]


def test_invalid_impairments_are_refused():
    for bad in ({"loss_percent": 101}, {"delay_ms": -1}, {"drop_every": -2}, {"corrupt_percent": "x"},
                {"drop_every": 1.5}):
        with pytest.raises(DataPlaneError):
            Impairments(**bad)
    assert not Impairments().active and Impairments(jitter_ms=1).active
