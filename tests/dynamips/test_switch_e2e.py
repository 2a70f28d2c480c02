"""End to end: real VPCS processes on an Ethernet switch, with dynamips and with the built-in switch."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from lab import VPC, require_program

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["dynamips", "builtin"])
def backend(request) -> str:
    if request.param == "dynamips":
        require_program("dynamips")
    return request.param


@pytest.fixture
def gns3_config_overrides(backend: str) -> dict:
    return {"Dynamips": {"switch_backend": backend}}


@pytest.fixture
async def vpcs_lab(tmp_path: Path):
    """Start VPCS processes on demand; all of them are ended at teardown."""
    vpcs = require_program("vpcs")
    started: list[VPC] = []

    async def make(ip: str) -> VPC:
        vpc = VPC(vpcs, tmp_path, ip, len(started) + 1)
        started.append(vpc)
        return await vpc.launch()

    yield make
    for vpc in started:
        vpc.stop()


async def make_switch(api, pid: str, name: str) -> str:
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": name, "device_type": "ethernet_switch"})
    assert reply.status == 201, reply
    return reply.json["device_id"]


async def plug(api, pid: str, device: str, port: int, nio: dict, mode: str, vlan: int) -> None:
    body = {"nio": nio, "port_settings": {"type": mode, "vlan": vlan, "ethertype": ""}}
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices/{device}/ports/{port}/nio", body)
    assert reply.status == 201, reply
    assert reply.json == nio


def pcap_frames(path: Path) -> int:
    """Count records of a classic pcap by walking its headers."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    offset, count = 24, 0
    while offset + 16 <= len(data):
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        offset += 16 + incl
        count += 1
    assert offset == len(data)
    return count


async def test_vlans_isolate_and_capture(api, project, backend, vpcs_lab, gns3_server) -> None:
    pid = project["project_id"]
    switch = await make_switch(api, pid, "SW1")
    device = gns3_server.emulators["dynamips_devices"].vms[switch]
    assert type(device).__name__ == ("EthernetSwitch" if backend == "dynamips" else "BuiltinEthernetSwitch")
    pc1, pc2, pc3 = await vpcs_lab("10.0.10.1"), await vpcs_lab("10.0.10.2"), await vpcs_lab("10.0.10.3")
    await plug(api, pid, switch, 1, pc1.nio(), "access", 10)
    await plug(api, pid, switch, 2, pc2.nio(), "access", 10)
    await plug(api, pid, switch, 3, pc3.nio(), "access", 20)
    reply = await api.get(f"/v1/projects/{pid}/dynamips/devices/{switch}")
    assert reply.json["ports"] == [
        {"port": 1, "type": "access", "vlan": 10, "ethertype": ""},
        {"port": 2, "type": "access", "vlan": 10, "ethertype": ""},
        {"port": 3, "type": "access", "vlan": 20, "ethertype": ""},
    ]

    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices/{switch}/ports/1/start_capture",
                           {"capture_file_name": "sw1-port1.pcap", "data_link_type": "DLT_EN10MB"})
    assert reply.status == 200, reply
    pcap = Path(reply.json["pcap_file_path"])
    assert pcap.parent.name == "captures"

    assert await pc1.ping("10.0.10.2") >= 2, pc1.log
    assert await pc3.ping("10.0.10.1", count=2) == 0, pc3.log

    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices/{switch}/ports/1/stop_capture")
    assert reply.status == 204

    frames = pcap_frames(pcap)
    assert frames >= 4  # ARP and ICMP both ways
    if shutil.which("capinfos"):
        info = subprocess.run(["capinfos", "-t", "-c", str(pcap)], capture_output=True, text=True, check=True)
        assert "pcap" in info.stdout and f"Number of packets:   {frames}" in " ".join(info.stdout.split("\n"))
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "icmp", "-T", "fields", "-e", "ip.src",
                              "-e", "ip.dst", "-e", "icmp.type"], capture_output=True, text=True, check=True,
                             env={**os.environ, "LANG": "C"}).stdout.split("\n")
        rows = {tuple(line.split("\t")) for line in out if line}
        assert ("10.0.10.1", "10.0.10.2", "8") in rows
        assert ("10.0.10.2", "10.0.10.1", "0") in rows
        # VLAN 20 traffic never reaches a VLAN 10 port
        assert not any(r[0] == "10.0.10.3" for r in rows)


async def test_dot1q_trunk_between_switches(api, project, backend, vpcs_lab, gns3_server) -> None:
    pid = project["project_id"]
    sw_a, sw_b = await make_switch(api, pid, "A"), await make_switch(api, pid, "B")
    pc1, pc2, pc3 = await vpcs_lab("10.0.10.1"), await vpcs_lab("10.0.10.2"), await vpcs_lab("10.0.10.3")
    await plug(api, pid, sw_a, 1, pc1.nio(), "access", 10)
    await plug(api, pid, sw_b, 1, pc2.nio(), "access", 10)
    await plug(api, pid, sw_b, 2, pc3.nio(), "access", 20)
    trunk_a = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    trunk_b = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    await plug(api, pid, sw_a, 10, {"type": "nio_udp", "lport": trunk_a, "rhost": "127.0.0.1", "rport": trunk_b},
               "dot1q", 1)
    await plug(api, pid, sw_b, 10, {"type": "nio_udp", "lport": trunk_b, "rhost": "127.0.0.1", "rport": trunk_a},
               "dot1q", 1)
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices/{sw_a}/ports/10/start_capture",
                           {"capture_file_name": "trunk.pcap", "data_link_type": "DLT_EN10MB"})
    assert reply.status == 200
    assert await pc1.ping("10.0.10.2") >= 2, pc1.log
    assert await pc1.ping("10.0.10.3", count=2) == 0, pc1.log
    await api.post(f"/v1/projects/{pid}/dynamips/devices/{sw_a}/ports/10/stop_capture")
    pcap = Path(reply.json["pcap_file_path"])
    assert pcap_frames(pcap) >= 4
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "icmp", "-T", "fields", "-e", "vlan.id"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out and set(out) == {"10"}  # ICMP crossed the trunk tagged with VLAN 10

    # removing the trunk's NIO forgets its settings and cuts the path
    reply = await api.delete(f"/v1/projects/{pid}/dynamips/devices/{sw_a}/ports/10/nio")
    assert reply.status == 204
    ports = (await api.get(f"/v1/projects/{pid}/dynamips/devices/{sw_a}")).json["ports"]
    assert [p["port"] for p in ports] == [1]
    assert trunk_a not in gns3_server.ports.udp_used
