"""TAP, veth and raw Ethernet endpoints carry a real ping between network namespaces the tests create."""

from __future__ import annotations

import pytest
from dataplane_helpers import run, unique

from gns3core.dataplane import EthernetEndpoint, TAPEndpoint, VethEndpoint, interface_exists


def ping_ok(output: str) -> bool:
    return " 0% packet loss" in output or "3 packets received" in output or ", 2 packets received" in output


@pytest.mark.asyncio
@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
async def test_tap_to_veth_in_named_namespaces(dataplane, netns, process):
    ns_tap, ns_veth = netns.add(), netns.add()
    tap_name, host_name, peer_name = unique("gdpt"), unique("gdpv"), unique("gdpw")
    tap = TAPEndpoint(tap_name)
    veth = VethEndpoint(host_name, peer_name, netns=ns_veth, peer_rename="eth0")
    bridge = await dataplane.create_bridge("tapveth", tap, veth, process=process)
    assert tap.created and interface_exists(host_name) and not interface_exists(peer_name)
    # The TAP was created here; hand it to the first namespace (its descriptor stays with the bridge).
    run("ip", "link", "set", tap_name, "netns", ns_tap)
    netns.exec(ns_tap, "ip", "addr", "add", "10.201.0.1/24", "dev", tap_name)
    netns.exec(ns_tap, "ip", "link", "set", tap_name, "up")
    netns.exec(ns_veth, "ip", "addr", "add", "10.201.0.2/24", "dev", "eth0")
    result = netns.exec(ns_tap, "busybox", "ping", "-c", "3", "-W", "2", "10.201.0.2", check=False)
    assert result.returncode == 0 and ping_ok(result.stdout), result.stdout + result.stderr
    stats = bridge.stats
    assert stats["frames_a_to_b"] >= 3 and stats["frames_b_to_a"] >= 3
    await dataplane.remove_bridge("tapveth")
    assert not interface_exists(host_name)
    assert tap_name not in netns.exec(ns_tap, "ip", "-o", "link").stdout
    assert "eth0" not in netns.exec(ns_veth, "ip", "-o", "link").stdout


@pytest.mark.asyncio
async def test_ethernet_to_veth_in_process_namespace(dataplane, netns):
    """A host interface (raw socket) bridged to a veth whose far end goes into a process's namespace (as for a
    container), renamed eth0 there."""
    ns_host = netns.add()
    wire, wire_peer = unique("gdpe"), unique("gdpf")
    run("ip", "link", "add", wire, "type", "veth", "peer", "name", wire_peer, "netns", ns_host)
    netns.links.append(wire)
    run("ip", "link", "set", wire, "up")
    netns.exec(ns_host, "ip", "addr", "add", "10.202.0.1/24", "dev", wire_peer)
    netns.exec(ns_host, "ip", "link", "set", wire_peer, "up")
    pid = netns.anonymous()
    host_name = unique("gdpv")
    veth = VethEndpoint(host_name, unique("gdpw"), pid=pid, peer_rename="eth0")
    await dataplane.create_bridge("ethveth", EthernetEndpoint(wire), veth)
    run("nsenter", "-t", str(pid), "-n", "ip", "addr", "add", "10.202.0.2/24", "dev", "eth0")
    run("nsenter", "-t", str(pid), "-n", "ip", "link", "set", "lo", "up")
    result = netns.exec(ns_host, "busybox", "ping", "-c", "3", "-W", "2", "10.202.0.2", check=False)
    assert result.returncode == 0 and ping_ok(result.stdout), result.stdout + result.stderr
    await dataplane.remove_bridge("ethveth")
    assert not interface_exists(host_name)
    assert "eth0" not in run("nsenter", "-t", str(pid), "-n", "ip", "-o", "link").stdout
    assert interface_exists(wire)  # a host interface is only borrowed, never removed
