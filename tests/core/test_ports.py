"""The port manager: lowest free first, substitution with a warning, UDP companions, release, no collisions."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from core_helpers import free_port_block

from gns3core.errors import Conflict
from gns3core.ports import PortManager, PortRange


@pytest.fixture
def tcp_base() -> int:
    return free_port_block(socket.SOCK_STREAM, 20)


@pytest.fixture
def udp_base() -> int:
    return free_port_block(socket.SOCK_DGRAM, 30)


def manager(tcp_base: int, udp_base: int, tcp_size: int = 10, udp_size: int = 20) -> PortManager:
    return PortManager("127.0.0.1", PortRange(tcp_base, tcp_base + tcp_size - 1),
                       PortRange(udp_base, udp_base + udp_size - 1), udp_host="127.0.0.1")


def test_tcp_lowest_free_first(tcp_base, udp_base) -> None:
    ports = manager(tcp_base, udp_base)
    assert ports.get_free_tcp_port("p1") == tcp_base
    assert ports.get_free_tcp_port("p2") == tcp_base + 1
    with socket.socket() as busy:  # held by another program on the host
        busy.bind(("127.0.0.1", tcp_base + 2))
        busy.listen()
        assert ports.get_free_tcp_port("p1") == tcp_base + 3
    ports.release_tcp_port(tcp_base, "p1")
    assert ports.get_free_tcp_port("p1") == tcp_base
    assert ports.ports_of("p1") == ({tcp_base, tcp_base + 3}, set())


@pytest.mark.parametrize("holder", ["127.0.0.1", "0.0.0.0"])
def test_udp_port_held_with_reuseaddr_is_not_free(tcp_base, udp_base, holder: str) -> None:
    """qemu sets SO_REUSEADDR on its tunnel sockets: a port it holds must not look free to the server."""
    ports = PortManager("127.0.0.1", PortRange(tcp_base, tcp_base + 9), PortRange(udp_base, udp_base + 19),
                        udp_host="0.0.0.0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((holder, udp_base))
        assert ports.get_free_udp_port("p1") == udp_base + 1


def test_tcp_range_exhausted(tcp_base, udp_base) -> None:
    ports = manager(tcp_base, udp_base, tcp_size=2)
    ports.get_free_tcp_port("p")
    ports.get_free_tcp_port("p")
    with pytest.raises(Conflict, match=f"between {tcp_base} and {tcp_base + 1}"):
        ports.get_free_tcp_port("p")


def test_requested_console_port_substitution(tcp_base, udp_base) -> None:
    ports = manager(tcp_base, udp_base)
    warnings: list[str] = []
    assert ports.reserve_tcp_port(tcp_base + 5, "p", warn=warnings.append) == tcp_base + 5
    assert warnings == []
    # Already recorded: replaced by the lowest free port, with a warning.
    assert ports.reserve_tcp_port(tcp_base + 5, "p", warn=warnings.append) == tcp_base
    assert warnings[-1] == (f"TCP port {tcp_base + 5} already in use on host 127.0.0.1. "
                            f"Port has been replaced by {tcp_base}")
    # Outside the console range.
    assert ports.reserve_tcp_port(80, "p", warn=warnings.append) == tcp_base + 1
    assert warnings[-1] == (f"TCP port 80 is outside the range {tcp_base}-{tcp_base + 9} on host 127.0.0.1. "
                            f"Port has been replaced by {tcp_base + 1}")
    # Bound by another program.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", tcp_base + 7))
        busy.listen()
        assert ports.reserve_tcp_port(tcp_base + 7, "p", warn=warnings.append) == tcp_base + 2
    assert warnings[-1].startswith(f"TCP port {tcp_base + 7} already in use")
    assert len(warnings) == 3


def test_udp_companion_offsets(tcp_base, udp_base) -> None:
    ports = manager(tcp_base, udp_base, udp_size=12)
    ports.udp_companion_offsets = (9,)
    assert ports.get_free_udp_port("p") == udp_base
    assert udp_base + 9 in ports.udp_used
    assert ports.get_free_udp_port("p") == udp_base + 1
    assert udp_base + 10 in ports.udp_used
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:  # the companion of +2 is taken on the host
        busy.bind(("0.0.0.0", udp_base + 11))
        # +2 needs +11 (taken), +3 needs +12 (outside the range); everything else is held: nothing left.
        with pytest.raises(Conflict):
            ports.get_free_udp_port("p")
    ports.release_udp_port(udp_base, "p")
    assert udp_base not in ports.udp_used and udp_base + 9 not in ports.udp_used
    # A port that is some tunnel's companion is never handed out as a tunnel port, and no companion lands on one.
    assert ports.get_free_udp_port("p") == udp_base
    with pytest.raises(Conflict, match="already in use on host 127.0.0.1"):
        ports.reserve_udp_port(udp_base + 10, "p")
    with pytest.raises(Conflict, match="outside the range"):
        ports.reserve_udp_port(udp_base + 100, "p")
    ports.release_owner("p")
    assert ports.udp_used == set()
    assert ports.ports_of("p") == (set(), set())


def test_release_owner_only_touches_that_owner(tcp_base, udp_base) -> None:
    ports = manager(tcp_base, udp_base)
    a = ports.get_free_tcp_port("a"), ports.get_free_udp_port("a")
    b = ports.get_free_tcp_port("b"), ports.get_free_udp_port("b")
    ports.release_owner("a")
    assert ports.tcp_used == {b[0]} and ports.udp_used == {b[1]}
    assert ports.get_free_tcp_port("c") == a[0]


# -- through the API --------------------------------------------------------------------------------------------------

async def test_taken_console_port_is_replaced_with_a_warning(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    first = (await api.post(base, {"name": "a"})).json
    async with api.client.get(f"/v1/projects/{pid}/notifications") as response:
        await asyncio.wait_for(response.content.readline(), 5)
        reply = await api.post(base, {"name": "b", "console": first["console"]})
        assert reply.status == 201
        second = reply.json
        assert second["console"] != first["console"]
        warning = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        assert warning == {"action": "log.warning", "event": {"message": (
            f"TCP port {first['console']} already in use on host 127.0.0.1. "
            f"Port has been replaced by {second['console']}")}}
        reply = await api.put(f"{base}/{second['vm_id']}", {"console": 1})
        assert reply.status == 200
        warning = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        assert warning["event"]["message"] == (
            f"TCP port 1 is outside the range 2001-7000 on host 127.0.0.1. "
            f"Port has been replaced by {reply.json['console']}")
    assert {first["console"], reply.json["console"]} <= gns3_server.ports.tcp_used


async def test_console_released_on_vm_delete(api, project, gns3_server) -> None:
    base = f"/v1/projects/{project['project_id']}/example/vms"
    vm = (await api.post(base, {"name": "a"})).json
    assert vm["console"] in gns3_server.ports.tcp_used
    assert (await api.delete(f"{base}/{vm['vm_id']}")).status == 204
    assert vm["console"] not in gns3_server.ports.tcp_used
    assert gns3_server.ports.ports_of(project["project_id"]) == (set(), set())


async def test_udp_released_on_nio_delete(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    vm = (await api.post(base, {"name": "a"})).json
    lport = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    nio = f"{base}/{vm['vm_id']}/adapters/0/ports/0/nio"
    assert (await api.post(nio, {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": 1})).status == 201
    assert lport in gns3_server.ports.udp_used
    await api.delete(f"{base}/{vm['vm_id']}")
    assert lport not in gns3_server.ports.udp_used


async def test_two_hundred_vms_no_collision(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    replies = []
    for chunk in range(0, 200, 20):
        replies += await asyncio.gather(*(api.post(base, {"name": f"vm{i}"}) for i in range(chunk, chunk + 20)))
    assert all(r.status == 201 for r in replies)
    consoles = [r.json["console"] for r in replies]
    assert len(set(consoles)) == 200
    assert all(2001 <= c <= 7000 for c in consoles)
    assert set(consoles) == gns3_server.ports.ports_of(pid)[0]
    await api.delete(f"/v1/projects/{pid}")
    assert not set(consoles) & gns3_server.ports.tcp_used
