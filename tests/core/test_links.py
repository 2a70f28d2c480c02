"""The core's link wiring (gns3core.emulator.links) on the example plugin, with UDP sockets standing for the emulator.

The "emulator side" of each port is a UDP socket of the test; the bridge joins it to the NIO's tunnel, whose far end
is another socket of the test. Everything stays on loopback.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from typing import Any

import pytest

from gns3core.dataplane import UDPEndpoint
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.nio import NIONAT
from gns3core.testing.ports import free_vpcs_udp_port


@pytest.fixture
def gns3_config_overrides() -> dict[str, dict[str, str]]:
    """Tunnel ports away from 10000, where the servers of other suites running on this machine start theirs."""
    start = random.randrange(60000, 64500, 500)
    return {"Server": {"udp_start_port_range": str(start), "udp_end_port_range": str(start + 499)}}


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", free_vpcs_udp_port()))
    sock.settimeout(3)
    return sock


async def received(sock: socket.socket) -> bytes:
    return await asyncio.to_thread(lambda: sock.recv(65536))


async def nothing_received(sock: socket.socket, wait: float = 0.5) -> bool:
    def probe() -> bool:
        sock.settimeout(wait)
        try:
            sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            sock.settimeout(3)
        return False

    return await asyncio.to_thread(probe)


FRAME = bytes.fromhex("ffffffffffff005079666800" "0806") + b"\x00" * 46


@pytest.fixture
def sockets():
    made = {name: udp_socket() for name in ("emulator", "peer", "peer2")}
    yield made
    for sock in made.values():
        sock.close()


async def wired_vm(api, project, gns3_server, emulator: socket.socket) -> tuple[Any, str]:
    """An example VM, started, whose port 0/0 is the test's `emulator` socket."""
    reply = await api.post(f"/v1/projects/{project['project_id']}/example/vms", {"name": "wired"})
    vm = gns3_server.emulators["example"].get_vm(reply.json["vm_id"])
    emulator_port = emulator.getsockname()[1]
    bridge_port = free_vpcs_udp_port()
    vm.links = LinkWiring(vm, lambda _a, _p: UDPEndpoint(bridge_port, "127.0.0.1", emulator_port))
    url = f"/v1/projects/{project['project_id']}/example/vms/{vm.id}"
    assert (await api.post(url + "/start")).status == 204
    await vm.links.start()
    emulator.connect(("127.0.0.1", bridge_port))
    return vm, url


async def add_udp_nio(api, url: str, project: dict, peer: socket.socket) -> int:
    lport = (await api.post(f"/v1/projects/{project['project_id']}/ports/udp")).json["udp_port"]
    body = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": peer.getsockname()[1]}
    reply = await api.post(url + "/adapters/0/ports/0/nio", body)
    assert reply.status == 201, reply
    peer.connect(("127.0.0.1", lport))
    return lport


async def test_nio_added_while_running_is_bridged_both_ways(api, project, gns3_server, sockets) -> None:
    vm, url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    await add_udp_nio(api, url, project, sockets["peer"])
    sockets["emulator"].send(FRAME)
    assert await received(sockets["peer"]) == FRAME
    sockets["peer"].send(FRAME[::-1])
    assert await received(sockets["emulator"]) == FRAME[::-1]
    assert len(vm.links.bridges) == 1


async def test_replaced_nio_repoints_the_bridge_and_removed_nio_unbridges(api, project, gns3_server,
                                                                           sockets) -> None:
    vm, url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    await add_udp_nio(api, url, project, sockets["peer"])
    bridge = next(iter(vm.links.bridges.values()))
    await add_udp_nio(api, url, project, sockets["peer2"])
    assert next(iter(vm.links.bridges.values())) is bridge  # the same bridge, pointed elsewhere
    sockets["emulator"].send(FRAME)
    assert await received(sockets["peer2"]) == FRAME
    assert (await api.delete(url + "/adapters/0/ports/0/nio")).status == 204
    assert vm.links.bridges == {}
    assert gns3_server.dataplane.bridges == {}
    sockets["emulator"].send(FRAME)
    assert await nothing_received(sockets["peer2"])


async def test_capture_goes_to_the_bridge_and_waits_for_the_next_start(api, project, gns3_server, sockets) -> None:
    vm, url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    port_url = url + "/adapters/0/ports/0"
    reply = await api.post(port_url + "/start_capture", {"capture_file_name": "early.pcap"})
    assert reply.status == 409 and reply.json["message"] == "Adapter 0 is not connected"
    await add_udp_nio(api, url, project, sockets["peer"])
    await vm.links.stop()  # the emulator went down: the capture is remembered, not written
    reply = await api.post(port_url + "/start_capture", {"capture_file_name": "link.pcap",
                                                          "data_link_type": "DLT_EN10MB"})
    assert reply.status == 200, reply
    path = reply.json["pcap_file_path"]
    reply = await api.post(port_url + "/start_capture", {"capture_file_name": "again.pcap"})
    assert reply.status == 409 and "already activated" in reply.json["message"]
    await vm.links.start()
    for _ in range(3):
        sockets["emulator"].send(FRAME)
        assert await received(sockets["peer"]) == FRAME
    assert (await api.post(port_url + "/stop_capture")).status == 204
    with open(path, "rb") as handle:
        data = handle.read()
    magic, _major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 1
    assert data.count(FRAME) == 3


async def test_failed_wiring_changes_nothing(api, project, gns3_server, sockets) -> None:
    vm, url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    lport = await add_udp_nio(api, url, project, sockets["peer"])
    before = vm.get_nio(0, 0)
    # The tunnel port is already bound by the live bridge: a second NIO on another port fails to bind it.
    other = free_vpcs_udp_port()
    vm.links.endpoint_for = lambda _a, _p: UDPEndpoint(other, "127.0.0.1", sockets["emulator"].getsockname()[1])
    await vm.remove_nio(0, 0)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("0.0.0.0", other))
    try:
        body = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": sockets["peer"].getsockname()[1]}
        reply = await api.post(url + "/adapters/0/ports/0/nio", body)
        assert reply.status == 409, reply
        assert vm.get_nio(0, 0) is None and before is not None
        assert vm.links.bridges == {}
    finally:
        blocker.close()


async def test_close_unwires(api, project, gns3_server, sockets) -> None:
    vm, _url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    await add_udp_nio(api, _url, project, sockets["peer"])
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert not vm.links.active and gns3_server.dataplane.bridges == {}


async def test_native_nios_are_left_to_the_emulator(api, project, gns3_server, sockets) -> None:
    """A NIO the emulator attaches itself (VMware's nio_nat) gets no bridge, replaces a bridged one cleanly, and
    cannot be captured; a bridged NIO put back is bridged again."""
    vm, url = await wired_vm(api, project, gns3_server, sockets["emulator"])
    vm.links.native_nios = frozenset({"nio_nat"})
    await add_udp_nio(api, url, project, sockets["peer"])
    assert len(vm.links.bridges) == 1
    await vm.add_nio(0, 0, NIONAT())
    assert vm.links.bridges == {} and gns3_server.dataplane.bridges == {}
    reply = await api.post(url + "/adapters/0/ports/0/start_capture", {"capture_file_name": "nat.pcap"})
    assert reply.status == 409 and "nio_nat link is attached by example itself" in reply.json["message"]
    await vm.links.stop()
    await vm.links.start()
    assert vm.links.bridges == {}
    await add_udp_nio(api, url, project, sockets["peer2"])
    sockets["emulator"].send(FRAME)
    assert await received(sockets["peer2"]) == FRAME
