"""Dynamips 0.2.14 deadlocks when frames reach an Ethernet switch while a port is attached to it: the server replaces
the wedged hypervisor with one holding the same switch (ports, VLANs, capture) and the attach still succeeds.

The frames here are sent from the test's own UDP sockets on loopback, straight into the switch's tunnels."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_switch_e2e import pcap_frames

from gns3core.testing.notifications import NotificationStream

pytestmark = pytest.mark.timeout(120)

BROADCAST = b"\xff" * 6


def frame(source: int, tag: bytes) -> bytes:
    """A broadcast Ethernet frame from a locally administered MAC address, padded to the minimum size."""
    return (BROADCAST + bytes([0x02, 0, 0, 0, 0, source]) + b"\x88\xb5" + tag).ljust(60, b"\0")


@pytest.fixture
def gns3_config_overrides(dynamips_path: str) -> dict[str, dict[str, str]]:
    return {"Dynamips": {"switch_backend": "dynamips", "dynamips_path": dynamips_path}}


@pytest.fixture
def peers():
    """Three UDP sockets standing for the nodes plugged into switch ports 1-3."""
    sockets = []
    for _ in range(3):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        sockets.append(sock)
    yield sockets
    for sock in sockets:
        sock.close()


def received(sock: socket.socket, tag: bytes, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if tag in sock.recv(2048):
                return True
        except TimeoutError:
            pass
    return False


def flood(sock: socket.socket, port: int, seconds: float) -> threading.Thread:
    """Send a frame every half millisecond for `seconds`, in a thread so the event loop serves the API meanwhile."""
    def run() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sock.sendto(frame(1, b"flood"), ("127.0.0.1", port))
            time.sleep(0.0005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def test_switch_survives_frames_during_attach(api, project: dict[str, Any], gns3_server, peers) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "SW", "device_type": "ethernet_switch"})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
    device = gns3_server.emulators["dynamips_devices"].vms[reply.json["device_id"]]
    lports = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in peers]

    async def plug(number: int, vlan: int) -> Any:
        nio = {"type": "nio_udp", "lport": lports[number - 1], "rhost": "127.0.0.1",
               "rport": peers[number - 1].getsockname()[1]}
        return await api.post(f"{url}/ports/{number}/nio",
                              {"nio": nio, "port_settings": {"type": "access", "vlan": vlan, "ethertype": ""}})

    assert (await plug(1, 10)).status == 201
    reply = await api.post(f"{url}/ports/1/start_capture",
                           {"capture_file_name": "sw-port1.pcap", "data_link_type": "DLT_EN10MB"})
    assert reply.status == 200, reply
    pcap = Path(reply.json["pcap_file_path"])
    first = device.hypervisor

    async with NotificationStream(api, pid) as stream:
        sender = flood(peers[0], lports[0], 1.5)
        reply = await plug(2, 10)
        sender.join()
        assert reply.status == 201, reply
        warning = await stream.wait_for("log.warning")
    assert "stopped answering (ethsw add_nio" in warning["event"]["message"]
    assert device.hypervisor is not first and first.process is None  # the wedged one was ended
    assert (await plug(3, 20)).status == 201

    reply = await api.get(url)
    assert [(p["port"], p["vlan"]) for p in reply.json["ports"]] == [(1, 10), (2, 10), (3, 20)]
    for sock in peers[1:]:  # what the flood left queued
        sock.settimeout(0.01)
        while received(sock, b"", 0.05):
            pass
        sock.settimeout(0.2)
    peers[0].sendto(frame(1, b"after"), ("127.0.0.1", lports[0]))
    assert received(peers[1], b"after")  # VLAN 10 to VLAN 10: port 1 kept its VLAN through the restart
    assert not received(peers[2], b"after", 1.0)  # never into VLAN 20

    assert (await api.post(f"{url}/ports/1/stop_capture")).status == 204
    assert pcap_frames(pcap) >= 1  # the capture went on in the new hypervisor
    assert pcap.with_name("sw-port1-1.pcap").exists()  # what the wedged one had captured, kept aside
