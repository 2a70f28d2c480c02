"""pcap capture: valid files, link types, live flushing, stop and restart."""

from __future__ import annotations

import struct
import subprocess
import time

import pytest
from dataplane_helpers import pcap_records

from gns3core.dataplane import DataPlaneError, Impairments, UDPEndpoint, link_type


async def make_bridge(dataplane, udp_peers):
    left, right = udp_peers
    a = UDPEndpoint(0, "127.0.0.1", left.port)
    b = UDPEndpoint(0, "127.0.0.1", right.port)
    bridge = await dataplane.create_bridge("cap", a, b)
    return bridge, left, right, a.lport, b.lport


def wait_for_records(path, count, timeout=2.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = pcap_records(path)[1]
        except (AssertionError, struct.error):
            found = -1
        if found == count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.mark.asyncio
async def test_capture_both_directions_live_and_restart(dataplane, udp_peers, tmp_path):
    bridge, left, right, port_a, port_b = await make_bridge(dataplane, udp_peers)
    path = tmp_path / "deep" / "dir" / "one.pcap"
    bridge.start_capture(str(path))
    assert bridge.capturing and bridge.capture_file == str(path)
    frames = [bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 8, 0]) + bytes([i]) * 50 for i in range(10)]
    for frame in frames:
        left.send(frame, port_a)
    for frame in frames[:5]:
        right.send(frame, port_b)
    assert len(right.recv_all(limit=10)) == 10 and len(left.recv_all(limit=5)) == 5
    # Flushed while still capturing, so Wireshark can follow the file.
    assert wait_for_records(str(path), 15) == 15
    bridge.stop_capture()
    assert not bridge.capturing and bridge.capture_file is None
    assert pcap_records(str(path)) == (1, 15)
    info = subprocess.run(["capinfos", "-c", str(path)], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and "Number of packets:   15" in info.stdout

    # Restarting on the same file overwrites it: a fresh header and only the new frames.
    bridge.start_capture(str(path))
    left.send(frames[0], port_a)
    assert len(right.recv_all(limit=1)) == 1
    bridge.stop_capture()
    assert pcap_records(str(path)) == (1, 1)
    bridge.stop_capture()  # stopping twice is harmless


@pytest.mark.asyncio
async def test_capture_link_types_and_switch(dataplane, udp_peers, tmp_path):
    bridge, left, right, port_a, _port_b = await make_bridge(dataplane, udp_peers)
    for name, value in (("DLT_EN10MB", 1), ("DLT_C_HDLC", 104), ("DLT_PPP_SERIAL", 50), ("DLT_FRELAY", 107),
                        ("DLT_ATM_RFC1483", 11), ("en10mb", 1)):
        assert link_type(name) == value
    with pytest.raises(DataPlaneError, match="Unknown data link type"):
        bridge.start_capture(str(tmp_path / "x.pcap"), "DLT_BOGUS")
    assert not bridge.capturing
    first, second = tmp_path / "hdlc.pcap", tmp_path / "second.pcap"
    bridge.start_capture(str(first), "DLT_C_HDLC")
    left.send(b"\x0f\x00\x08\x00" + b"a" * 40, port_a)
    assert len(right.recv_all(limit=1)) == 1
    bridge.start_capture(str(second), "DLT_EN10MB")  # switching files closes the first one
    left.send(b"b" * 60, port_a)
    assert len(right.recv_all(limit=1)) == 1
    bridge.stop_capture()
    assert pcap_records(str(first)) == (104, 1)
    assert pcap_records(str(second)) == (1, 1)


@pytest.mark.asyncio
async def test_capture_records_what_is_forwarded(dataplane, udp_peers, tmp_path):
    bridge, left, right, port_a, _port_b = await make_bridge(dataplane, udp_peers)
    bridge.set_impairments(Impairments(drop_every=2))
    path = tmp_path / "lossy.pcap"
    bridge.start_capture(str(path))
    for index in range(20):
        left.send(bytes([index]) * 64, port_a)
    assert len(right.recv_all(timeout=0.3)) == 10
    bridge.stop_capture()
    assert pcap_records(str(path)) == (1, 10)


@pytest.mark.asyncio
async def test_capture_directory_refused(dataplane, udp_peers, tmp_path):
    bridge, *_rest = await make_bridge(dataplane, udp_peers)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataPlaneError, match="Cannot write capture file"):
        bridge.start_capture(str(blocker / "x.pcap"))
    assert not bridge.capturing
