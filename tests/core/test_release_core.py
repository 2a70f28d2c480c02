"""Core items of the released GNS3 1.5.x line served beside the seed's contract (api-1.5-release §2, §6)."""

from __future__ import annotations

import socket

import psutil
import pytest

from gns3core.errors import Conflict
from gns3core.ports import BROWSER_REFUSED_PORTS, PortManager, PortRange
from gns3core.testing.ports import free_tcp_port


async def test_a_400_names_the_method_too(api) -> None:
    reply = await api.post("/v1/projects", {"name": 42})
    assert reply.status == 400
    assert reply.json["method"] == "POST"
    assert reply.json["path"] == "/v1/projects" and reply.json["request"] == {"name": 42}
    reply = await api.put("/v1/projects/not-a-uuid", {})
    assert reply.status == 400 and reply.json["method"] == "PUT"
    reply = await api.get("/v1/projects/00000000-0000-4000-8000-000000000000")
    assert reply.status == 404 and "method" not in reply.json  # only 400s carry it, as in 1.5.x


def test_ports_browsers_refuse_are_never_handed_out() -> None:
    assert {2049, 3659, 4045, 6000, 6665, 6669} <= BROWSER_REFUSED_PORTS  # the ones inside the default 2001-7000
    free = [p for p in range(6665, 6671) if _bindable(p)]
    if free != list(range(6665, 6671)):
        pytest.skip("a program on this machine holds one of the ports 6665-6670")
    ports = PortManager("127.0.0.1", PortRange(6665, 6670), PortRange(60000, 60001))
    assert ports.get_free_tcp_port("p") == 6670  # 6665-6669 are IRC ports every browser refuses
    # A client that asks for one gets it: only the automatic choice avoids them.
    assert ports.reserve_tcp_port(6667, "p") == 6667


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_udp_conflict_names_the_host() -> None:
    base = free_tcp_port()
    ports = PortManager("127.0.0.1", PortRange(base, base), PortRange(40000, 40100), udp_host="127.0.0.1")
    ports.reserve_udp_port(40000, "p")
    with pytest.raises(Conflict) as refused:
        ports.reserve_udp_port(40000, "p")
    assert refused.value.message == "UDP port 40000 already in use on host 127.0.0.1"


async def test_interfaces_carry_their_mac_address(api) -> None:
    reply = await api.get("/v1/interfaces")
    assert reply.status == 200
    macs = {name: next((a.address for a in addresses if a.family == psutil.AF_LINK), "")
            for name, addresses in psutil.net_if_addrs().items()}
    assert {item["name"]: item["mac_address"] for item in reply.json} == macs
    assert any(len(mac.split(":")) == 6 for mac in macs.values())  # loopback's is all zeros, others are real
