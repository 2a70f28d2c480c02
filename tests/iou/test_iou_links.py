"""Traffic through IOU stand-ins: a real VPCS pings one, two stand-ins ping each other, links and captures change
while they run. Frames cross the core data plane's netio endpoints (what iouyap did in GNS3 1.5)."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
from pathlib import Path

from iou_helpers import ROUTER_CONFIG, Console, create_iou, vm_url

from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.vpcs import VPCSProcess


async def udp_port(api, pid: str) -> int:
    return (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]


async def link(api, pid: str, vm: dict, adapter: int, port: int, lport: int, rport: int) -> None:
    reply = await api.post(vm_url(pid, vm["vm_id"]) + f"/adapters/{adapter}/ports/{port}/nio",
                           {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport})
    assert reply.status == 201, reply


async def start(api, pid: str, vm: dict) -> dict:
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", {})
    assert reply.status == 200, reply
    return reply.json


def capinfos(path: str) -> dict[str, str]:
    out = subprocess.run(["capinfos", "-M", path], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def tshark(path: str, display_filter: str) -> list[str]:
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", display_filter], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


async def ping_from(vm: dict, target: str) -> str:
    console = await Console.open(vm["console"])
    try:
        await console.read_until("'^^'")
        console.writer.write(b"\r")
        await console.read_until("#")
        return await console.command(f"ping {target}", until="#", timeout=30)
    finally:
        await console.close()


async def test_vpcs_pings_standin_through_udp_with_capture(api, project, standin_image, vpcs_path, capture_tools,
                                                           tmp_path: Path):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, startup_config_content=ROUTER_CONFIG.format(address="10.21.0.1"))
    iou_port, vpcs_port = await udp_port(api, pid), free_vpcs_udp_port()
    await link(api, pid, vm, 0, 0, iou_port, vpcs_port)
    vpcs = VPCSProcess(tmp_path / "vpcs", free_tcp_port(), vpcs_port, iou_port, startup=["ip 10.21.0.2 24"])
    vpcs.start()
    try:
        await vpcs.wait_console_async()
        await start(api, pid, vm)
        reply = await api.post(vm_url(pid, vm["vm_id"]) + "/adapters/0/ports/0/start_capture",
                               {"capture_file_name": "r1-e0.pcap", "data_link_type": "DLT_EN10MB"})
        assert reply.status == 200, reply
        pcap = reply.json["pcap_file_path"]
        output = await vpcs.command_async("ping 10.21.0.1 -c 3", timeout=30)
        assert output.count("icmp_seq") == 3 and "ttl=255" in output, output
        reply = await api.post(vm_url(pid, vm["vm_id"]) + "/adapters/0/ports/0/stop_capture")
        assert reply.status == 204
    finally:
        vpcs.stop()
    with open(pcap, "rb") as handle:
        assert handle.read(4) == bytes.fromhex("d4c3b2a1")  # classic pcap, little-endian magic a1b2c3d4
    info = capinfos(pcap)
    assert info["File encapsulation"] == "ether"
    assert int(info["Number of packets"]) >= 8  # ARP request/reply, 3 echo requests, 3 replies
    assert len(tshark(pcap, "icmp.type == 8 && ip.dst == 10.21.0.1")) == 3
    assert len(tshark(pcap, "icmp.type == 0 && ip.src == 10.21.0.1")) == 3
    assert len(tshark(pcap, "arp.opcode == 2 && arp.src.proto_ipv4 == 10.21.0.1")) >= 1


async def test_two_standins_ping_and_relink_while_running(api, project, standin_image):
    pid = project["project_id"]
    routers = [await create_iou(api, pid, standin_image, name=f"R{n}",
                                startup_config_content=ROUTER_CONFIG.format(address=f"10.22.0.{n}"))
               for n in (1, 2, 3)]
    r1, r2, r3 = routers
    p1, p2, p3, p1b = [await udp_port(api, pid) for _ in range(4)]
    await link(api, pid, r1, 0, 0, p1, p2)
    await link(api, pid, r2, 0, 0, p2, p1)
    for vm in routers:
        await start(api, pid, vm)
    assert "Success rate is 100 percent (5/5)" in await ping_from(r1, "10.22.0.2")
    # Re-link R1's port to R3 while everything runs: same local port, new destination, no restart.
    await link(api, pid, r1, 0, 0, p1, p3)
    await link(api, pid, r3, 0, 0, p3, p1)
    assert "Success rate is 100 percent (5/5)" in await ping_from(r1, "10.22.0.3")
    assert "Success rate is 0 percent (0/5)" in await ping_from(r2, "10.22.0.1")
    # Unplug: R1 alone on its segment.
    reply = await api.delete(vm_url(pid, r1["vm_id"]) + "/adapters/0/ports/0/nio")
    assert reply.status == 204
    assert "Success rate is 0 percent (0/5)" in await ping_from(r1, "10.22.0.3")
    # A new link with another local port works at once.
    await link(api, pid, r1, 0, 0, p1b, p3)
    await link(api, pid, r3, 0, 0, p3, p1b)
    assert "Success rate is 100 percent (5/5)" in await ping_from(r1, "10.22.0.3")
    for vm in routers:
        assert (await api.post(vm_url(pid, vm["vm_id"]) + "/stop")).status == 204


def hdlc_icmp_echo(src: str, dst: str, seq: int) -> bytes:
    def checksum(data: bytes) -> int:
        total = sum(struct.unpack(f">{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return ~total & 0xFFFF

    icmp = struct.pack(">BBHHH", 8, 0, 0, 0x4242, seq) + b"serial"
    icmp = icmp[:2] + struct.pack(">H", checksum(icmp)) + icmp[4:]
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, socket.inet_aton(src),
                         socket.inet_aton(dst))
    header = header[:10] + struct.pack(">H", checksum(header)) + header[12:]
    return b"\x0f\x00\x08\x00" + header + icmp


async def test_serial_capture_is_cisco_hdlc_and_restarts(api, project, standin_image, capture_tools):
    """A serial port's capture uses the link type the client names; a capture can be stopped and started again."""
    pid = project["project_id"]
    config = "hostname %h\n!\ninterface Serial2/0\n ip address 10.23.0.1 255.255.255.252\n!\nend\n"
    vm = await create_iou(api, pid, standin_image, startup_config_content=config)
    iou_port = await udp_port(api, pid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        await link(api, pid, vm, 2, 0, iou_port, peer.getsockname()[1])
        await start(api, pid, vm)
        pcaps = []
        for round_number, name in enumerate(("s2-0-a.pcap", "s2-0-b.pcap")):
            reply = await api.post(vm_url(pid, vm["vm_id"]) + "/adapters/2/ports/0/start_capture",
                                   {"capture_file_name": name, "data_link_type": "DLT_C_HDLC"})
            assert reply.status == 200, reply
            pcaps.append(reply.json["pcap_file_path"])
            slarp_request = b"\x8f\x00\x80\x35" + struct.pack(">IIIH", 0, 0, 0, 0xFFFF)
            peer.sendto(slarp_request, ("127.0.0.1", iou_port))
            reply_frame = await asyncio.to_thread(peer.recv, 2048)
            assert reply_frame[2:4] == b"\x80\x35" and struct.unpack_from(">I", reply_frame, 4)[0] == 1
            assert reply_frame[8:12] == socket.inet_aton("10.23.0.1")
            peer.sendto(hdlc_icmp_echo("10.23.0.2", "10.23.0.1", round_number), ("127.0.0.1", iou_port))
            echo_reply = await asyncio.to_thread(peer.recv, 2048)
            assert echo_reply[2:4] == b"\x08\x00" and echo_reply[4 + 20] == 0  # IPv4, ICMP echo reply
            reply = await api.post(vm_url(pid, vm["vm_id"]) + "/adapters/2/ports/0/stop_capture")
            assert reply.status == 204
    for pcap in pcaps:
        assert capinfos(pcap)["File encapsulation"] == "chdlc"
        assert len(tshark(pcap, "slarp")) == 2
        assert len(tshark(pcap, "icmp.type == 8")) == 1 and len(tshark(pcap, "icmp.type == 0")) == 1
    await api.post(vm_url(pid, vm["vm_id"]) + "/stop")
