"""Dynamips 0.2.14 deadlocks when frames reach an Ethernet switch or hub while a port is attached to it: the server
replaces the wedged hypervisor with one holding the same device (ports, VLANs, capture) and the attach still succeeds.

The frames here are sent from the test's own UDP sockets on loopback, straight into the switch's tunnels."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gns3_dynamips.hypervisor import HypervisorError
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


@pytest.mark.parametrize("device_type", ["ethernet_switch", "ethernet_hub"])
async def test_device_survives_frames_during_attach(api, project: dict[str, Any], gns3_server, peers,
                                                    device_type: str) -> None:
    pid = project["project_id"]
    switch = device_type == "ethernet_switch"
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "SW", "device_type": device_type})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
    device = gns3_server.emulators["dynamips_devices"].vms[reply.json["device_id"]]
    lports = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in peers]

    async def plug(number: int, vlan: int) -> Any:
        nio = {"type": "nio_udp", "lport": lports[number - 1], "rhost": "127.0.0.1",
               "rport": peers[number - 1].getsockname()[1]}
        settings = {"port_settings": {"type": "access", "vlan": vlan, "ethertype": ""}} if switch else {}
        return await api.post(f"{url}/ports/{number}/nio", {"nio": nio, **settings})

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
    command = "ethsw add_nio" if switch else "nio_bridge add_nio"
    assert f"stopped answering ({command}" in warning["event"]["message"]
    assert device.hypervisor is not first and first.process is None  # the wedged one was ended
    assert (await plug(3, 20)).status == 201

    if switch:
        reply = await api.get(url)
        assert [(p["port"], p["vlan"]) for p in reply.json["ports"]] == [(1, 10), (2, 10), (3, 20)]
    for sock in peers[1:]:  # what the flood left queued
        sock.settimeout(0.01)
        while received(sock, b"", 0.05):
            pass
        sock.settimeout(0.2)
    peers[0].sendto(frame(1, b"after"), ("127.0.0.1", lports[0]))
    assert received(peers[1], b"after")  # on the switch, VLAN 10 to VLAN 10: port 1 kept its VLAN through the restart
    if switch:
        assert not received(peers[2], b"after", 1.0)  # never into VLAN 20
    else:
        assert received(peers[2], b"after")  # a hub repeats to every port

    assert (await api.post(f"{url}/ports/1/stop_capture")).status == 204
    assert pcap_frames(pcap) >= 1  # the capture went on in the new hypervisor
    assert pcap.with_name("sw-port1-1.pcap").exists()  # what the wedged one had captured, kept aside


async def test_frame_relay_circuits_survive_frames_during_attach(api, project: dict[str, Any], gns3_server,
                                                                 peers) -> None:
    """A circuit is attached like a port: the rebuilt hypervisor gets every circuit, the new one included."""
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "FR", "device_type": "frame_relay_switch"})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
    device = gns3_server.emulators["dynamips_devices"].vms[reply.json["device_id"]]
    lports = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in peers]

    async def plug(number: int, mappings: dict[str, str]) -> Any:
        nio = {"type": "nio_udp", "lport": lports[number - 1], "rhost": "127.0.0.1",
               "rport": peers[number - 1].getsockname()[1]}
        return await api.post(f"{url}/ports/{number}/nio", {"nio": nio, "mappings": mappings})

    first_pair = {"1:102": "2:201", "2:201": "1:102"}
    assert (await plug(1, first_pair)).status == 201
    assert (await plug(2, first_pair)).status == 201
    first = device.hypervisor
    async with NotificationStream(api, pid) as stream:
        sender = flood(peers[0], lports[0], 1.5)  # port 1 has a circuit: dynamips reads it
        reply = await plug(3, {"1:103": "3:301", "3:301": "1:103"})
        sender.join()
        assert reply.status == 201, reply
        warning = await stream.wait_for("log.warning")
    assert "stopped answering (frsw create_vc" in warning["event"]["message"]
    assert device.hypervisor is not first and first.process is None
    assert (await api.get(url)).json["mappings"] == {
        "(1, 102)": "(2, 201)", "(2, 201)": "(1, 102)", "(1, 103)": "(3, 301)", "(3, 301)": "(1, 103)"}
    for (src, dlci_src), (dst, dlci_dst) in (((1, 102), (2, 201)), ((2, 201), (1, 102)),
                                             ((1, 103), (3, 301)), ((3, 301), (1, 103))):
        with pytest.raises(HypervisorError, match="unable to create VC"):  # it exists in the new hypervisor
            await device.hypervisor.send(f'frsw create_vc "FR" {device.nio_names[src]} {dlci_src} '
                                         f"{device.nio_names[dst]} {dlci_dst}")
    # while a circuit that was never asked for can be created there: the refusals above are the duplicates
    await device.hypervisor.send(f'frsw create_vc "FR" {device.nio_names[2]} 999 {device.nio_names[3]} 998')
