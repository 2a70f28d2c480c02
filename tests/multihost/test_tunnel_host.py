"""`[Server] udp_host`: parsing, the per-family address single-family emulators bind, where tunnel ports are probed,
and a dual-stack data-plane tunnel exchanging frames with an IPv4 peer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gns3core.config import Config
from gns3core.dataplane import DataPlane, DataPlaneError, UDPEndpoint
from gns3core.errors import Conflict
from gns3core.tunnels import ANY_IPV4, ANY_IPV6, default_udp_host, host_has_ipv6, local_address, parse_udp_host

needs_ipv6 = pytest.mark.skipif(not host_has_ipv6(), reason="the host has no IPv6")


def bound_udp(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    return sock


def test_parse_udp_host() -> None:
    assert parse_udp_host("") == default_udp_host() == (ANY_IPV6 if host_has_ipv6() else ANY_IPV4)
    assert parse_udp_host(" 10.1.2.3 ") == "10.1.2.3"
    assert parse_udp_host("[fd00::0001]") == "fd00::1"
    for bad in ("example.org", "10.1.2", "1.2.3.4:80", "::g"):
        with pytest.raises(Conflict, match="Invalid \\[Server\\] udp_host"):
            parse_udp_host(bad)


def test_local_address_per_family() -> None:
    assert local_address(ANY_IPV6, socket.AF_INET) == ANY_IPV4
    assert local_address(ANY_IPV6, socket.AF_INET6) == ANY_IPV6
    assert local_address(ANY_IPV4, socket.AF_INET) == ANY_IPV4
    assert local_address("192.0.2.7", socket.AF_INET) == "192.0.2.7"
    assert local_address("fd00::7", socket.AF_INET6) == "fd00::7"
    with pytest.raises(Conflict, match="set it to ::"):
        local_address(ANY_IPV4, socket.AF_INET6, "Qemu")
    with pytest.raises(Conflict, match="from \\[Server\\] udp_host 192.0.2.7"):
        local_address("192.0.2.7", socket.AF_INET6)
    with pytest.raises(Conflict, match="IPv4 peer"):
        local_address("fd00::7", socket.AF_INET)


async def test_server_probes_tunnel_ports_on_udp_host(api, project, gns3_server) -> None:
    assert gns3_server.udp_host == default_udp_host()
    assert gns3_server.ports.udp_host == gns3_server.udp_host
    gns3_server.config.set("Server", "udp_host", "127.0.0.1")
    gns3_server.apply_config()
    assert gns3_server.ports.udp_host == "127.0.0.1"
    reply = await api.post(f"/v1/projects/{project['project_id']}/ports/udp", {})
    assert reply.status == 201
    port = reply.json["udp_port"]
    with pytest.raises(Conflict, match=f"UDP port {port} already in use on host 127.0.0.1"):
        gns3_server.ports.reserve_udp_port(port, project["project_id"])


async def test_an_invalid_udp_host_answers_409_on_every_tunnel(api, project, gns3_server) -> None:
    gns3_server.config.set("Server", "udp_host", "not-an-address")
    gns3_server.apply_config()
    with pytest.raises(Conflict, match="Invalid \\[Server\\] udp_host 'not-an-address'"):
        _ = gns3_server.udp_host
    gns3_server.config.set("Server", "udp_host", "")
    gns3_server.apply_config()
    assert gns3_server.udp_host == default_udp_host()


def test_config_default_is_empty() -> None:
    section = Config(files=[]).server
    assert section.get("udp_host") == "" and section.get("mac_base") == ""


@needs_ipv6
async def test_dual_stack_tunnel_talks_to_an_ipv4_peer() -> None:
    """`::` (the default where the host has IPv6) receives from and sends to an IPv4 peer on one socket."""
    dataplane = DataPlane()
    peer, side_a = bound_udp(), bound_udp()
    peer_port, side_a_port = peer.getsockname()[1], side_a.getsockname()[1]
    try:
        tunnel = UDPEndpoint(0, "127.0.0.1", peer_port, laddr="::")
        near = UDPEndpoint(0, "127.0.0.1", side_a_port, laddr="127.0.0.1")
        bridge = await dataplane.create_bridge("dual", near, tunnel)
        lport = tunnel.lport
        sock = tunnel._sock
        assert sock.family == socket.AF_INET6 and sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        peer.sendto(b"\x01" * 60, ("127.0.0.1", lport))  # an IPv4 datagram into the :: socket
        assert (await asyncio.to_thread(side_a.recv, 100)) == b"\x01" * 60
        side_a.sendto(b"\x02" * 60, ("127.0.0.1", near.lport))  # and out of it to the IPv4 peer
        data, source = await asyncio.to_thread(peer.recvfrom, 100)
        assert data == b"\x02" * 60 and source[1] == lport
        await dataplane.remove_bridge(bridge.name)  # the wake-up datagram reaches the dual-stack reader
    finally:
        await dataplane.close()
        peer.close()
        side_a.close()


def test_a_specific_ipv4_address_cannot_reach_an_ipv6_peer() -> None:
    endpoint = UDPEndpoint(0, "::1", 9, laddr="127.0.0.1")
    with pytest.raises(DataPlaneError, match="another address family"):
        endpoint.open()
