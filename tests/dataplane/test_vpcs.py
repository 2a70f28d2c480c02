"""Two real VPCS instances ping each other through a bridge, and the capture holds the ICMP frames."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from dataplane_helpers import VPCS, free_udp_port, pcap_records

from gns3core.dataplane import UDPEndpoint

pytestmark = pytest.mark.skipif(shutil.which("vpcs") is None, reason="needs vpcs (apt package vpcs)")


@pytest.mark.asyncio
async def test_vpcs_ping_through_bridge_with_capture(dataplane, tmp_path):
    port_a, port_b = free_udp_port(), free_udp_port()
    bridge_a, bridge_b = free_udp_port(), free_udp_port()
    pc1 = VPCS(str(tmp_path / "pc1"), 1, port_a, bridge_a, "10.0.0.1 24")
    pc2 = VPCS(str(tmp_path / "pc2"), 2, port_b, bridge_b, "10.0.0.2 24")
    pcap = tmp_path / "captures" / "link.pcap"
    try:
        bridge = await dataplane.create_bridge(
            "vpcs-link", UDPEndpoint(bridge_a, "127.0.0.1", port_a), UDPEndpoint(bridge_b, "127.0.0.1", port_b))
        bridge.start_capture(str(pcap), "DLT_EN10MB")
        assert bridge.capturing
        pc1.connect()
        pc2.connect()
        assert "10.0.0.2/24" in pc2.command("show ip")
        output = pc1.command("ping 10.0.0.2 -c 3", timeout=20)
        replies = re.findall(r"(?:84 bytes from )?10\.0\.0\.2 icmp_seq=\d+ ttl=64", output)
        assert len(replies) >= 2, output
        bridge.stop_capture()
        assert not bridge.capturing
        stats = bridge.stats
        assert stats["frames_a_to_b"] >= 3 and stats["frames_b_to_a"] >= 3
    finally:
        await dataplane.close()
        pc1.stop()
        pc2.stop()

    linktype, count = pcap_records(str(pcap))
    assert linktype == 1 and count >= 6
    info = subprocess.run(["capinfos", "-t", "-c", str(pcap)], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and "pcap" in info.stdout and f"Number of packets:   {count}" in info.stdout
    decoded = subprocess.run(["tshark", "-r", str(pcap), "-Y", "icmp", "-T", "fields", "-e", "icmp.type",
                              "-e", "ip.src"], capture_output=True, text=True, check=False)
    assert decoded.returncode == 0, decoded.stderr
    rows = [line.split("\t") for line in decoded.stdout.splitlines()]
    assert sum(1 for kind, src in rows if kind == "8" and src == "10.0.0.1") >= 2
    assert sum(1 for kind, src in rows if kind == "0" and src == "10.0.0.2") >= 2
