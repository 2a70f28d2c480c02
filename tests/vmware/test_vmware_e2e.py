"""End to end through the API: a real VPCS pings the stand-in VMware VM through a UDP NIO, the VM's vmnet interface
and the core's bridge, with a capture running; links change while the VM runs; the serial console is shared; a VM
that stops on its own is reported."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from vmware_helpers import create_vm, udp_nio, vm_url

from gns3core.testing import require
from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.telnet import strip_telnet
from gns3core.testing.vpcs import VPCSProcess

pytestmark = pytest.mark.timeout(180)


def require_data_plane() -> None:
    require(os.geteuid() == 0, "the vmnet interfaces and raw sockets need root")
    require(os.path.exists("/dev/net/tun"), "the stand-in's vmnet interfaces need /dev/net/tun")


def require_vpcs() -> str:
    path = shutil.which("vpcs")
    require(path is not None, "vpcs is not installed (apt-get install vpcs)")
    return path  # type: ignore[return-value]


async def ping(vpcs: VPCSProcess, address: str, count: int = 3) -> int:
    """How many of `count` pings from the VPCS got an answer."""
    output = await vpcs.command_async(f"ping {address} -c {count}", timeout=30)
    return len(re.findall(rf"{re.escape(address)} icmp_seq=\d+ ttl=\d+", output))


def start_vpcs(workdir: Path, lport: int, server_port: int, address: str) -> VPCSProcess:
    vpcs = VPCSProcess(workdir, free_tcp_port(), lport, server_port, startup=[f"ip {address}"],
                       program=require_vpcs())
    vpcs.start()
    return vpcs


async def test_vpcs_pings_the_standin_vm_with_capture(api, project, standin, tmp_path: Path) -> None:
    require_data_plane()
    require(shutil.which("tshark") is not None and shutil.which("capinfos") is not None,
            "tshark and capinfos are not installed (apt-get install tshark)")
    vmx = standin.make_vm("guest", ips={0: "10.66.0.2"})
    vm = await create_vm(api, project, vmx, adapters=1, headless=True)
    url = vm_url(project, vm)
    vpcs_port = free_vpcs_udp_port()
    nio = await udp_nio(api, project, vpcs_port)
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    reply = await api.post(f"{url}/adapters/0/ports/0/start_capture",
                           {"capture_file_name": "guest.pcap", "data_link_type": "DLT_EN10MB"})
    assert reply.status == 200, reply
    pcap = Path(reply.json["pcap_file_path"])
    vpcs = start_vpcs(tmp_path / "pc", vpcs_port, nio["lport"], "10.66.0.1 24")
    try:
        assert (await api.post(f"{url}/start")).status == 204
        await vpcs.wait_console_async()
        assert await ping(vpcs, "10.66.0.2") >= 2
        assert (await api.post(f"{url}/adapters/0/ports/0/stop_capture")).status == 204
        assert (await api.post(f"{url}/stop")).status == 204
    finally:
        vpcs.stop()

    info = subprocess.run(["capinfos", "-M", "-c", "-E", str(pcap)], capture_output=True, text=True, check=False)
    assert info.returncode == 0, info.stderr
    assert "ether" in info.stdout.lower()
    count = int(re.search(r"Number of packets:\s+(\d+)", info.stdout).group(1))
    assert count >= 6
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "eth.src", "-e", "arp.opcode",
                             "-e", "icmp.type", "-e", "ip.src"], capture_output=True, text=True, check=False)
    assert fields.returncode == 0, fields.stderr
    rows = [line.split("\t") for line in fields.stdout.splitlines()]
    guest = [row for row in rows if row[0].startswith("00:0c:29:")]  # VMware's generated MAC addresses
    assert any(row[1] == "2" for row in guest), rows  # the guest's ARP reply
    assert sum(1 for row in guest if row[2] == "0" and row[3] == "10.66.0.2") >= 2  # its echo replies
    assert sum(1 for row in rows if row[2] == "8" and row[3] == "10.66.0.1") >= 2  # the VPCS's echo requests


async def test_links_change_while_the_vm_runs(api, project, standin, tmp_path: Path) -> None:
    require_data_plane()
    vmx = standin.make_vm("guest", ips={0: "10.67.0.2", 1: "10.68.0.2"})
    vm = await create_vm(api, project, vmx, adapters=2)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    first_port, second_port = free_vpcs_udp_port(), free_vpcs_udp_port()
    first_nio = await udp_nio(api, project, first_port)
    second_nio = await udp_nio(api, project, second_port)
    first = start_vpcs(tmp_path / "pc1", first_port, first_nio["lport"], "10.67.0.1 24")
    second = start_vpcs(tmp_path / "pc2", second_port, second_nio["lport"], "10.68.0.1 24")
    try:
        await first.wait_console_async()
        await second.wait_console_async()
        # Linked while running: bridged at once.
        assert (await api.post(f"{url}/adapters/0/ports/0/nio", first_nio)).status == 201
        assert await ping(first, "10.67.0.2") >= 2
        # A capture started while running goes to the live bridge.
        reply = await api.post(f"{url}/adapters/0/ports/0/start_capture", {"capture_file_name": "hot.pcap"})
        assert reply.status == 200
        # Unlinked while running: nothing gets through any more.
        assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
        assert await ping(first, "10.67.0.2", 2) == 0
        # The second adapter, on its own VMnet, gets a link of its own.
        assert (await api.post(f"{url}/adapters/1/ports/0/nio", second_nio)).status == 201
        assert await ping(second, "10.68.0.2") >= 2
        # NAT and VMnet attachments are VMware's own: not while the VM runs.
        reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_nat"})
        assert reply.status == 409 and "stop it" in reply.json["message"]
        assert (await api.post(f"{url}/stop")).status == 204
    finally:
        first.stop()
        second.stop()


async def test_console_is_shared_by_several_telnet_clients(api, project, standin, gns3_server) -> None:
    require_data_plane()
    vmx = standin.make_vm("console-vm")
    vm = await create_vm(api, project, vmx, enable_remote_console=True)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    clients = [await asyncio.open_connection(gns3_server.console_host, vm["console"]) for _ in range(2)]
    try:
        clients[0][1].write(b"hostname\r\n")
        for reader, _ in clients:  # both see what the guest prints
            await read_until(reader, b"console-vm$ ")
        clients[1][1].write(b"echo two-clients\r\x00")
        for reader, _ in clients:
            await read_until(reader, b"two-clients")
        # Turning the console off while running closes it.
        assert (await api.put(url, {"enable_remote_console": False})).status == 200
        async with asyncio.timeout(10):
            while await clients[0][0].read(1024):
                pass
    finally:
        for _, writer in clients:
            writer.close()
        assert (await api.post(f"{url}/stop")).status == 204


async def read_until(reader: asyncio.StreamReader, expected: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while expected not in strip_telnet(data):
            chunk = await reader.read(1024)
            assert chunk, data
            data += chunk
    return strip_telnet(data)


async def test_a_vm_that_stops_on_its_own_is_reported(api, project, standin) -> None:
    require_data_plane()
    vmx = standin.make_vm("fragile")
    before = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=1)
    url = vm_url(project, vm)
    events: list[dict] = []
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        await stream.content.readline()  # the first ping: the stream is open
        assert (await api.post(f"{url}/start")).status == 204
        assert vmx.read_bytes() != before
        os.kill(standin.vm_pid(vmx), signal.SIGKILL)  # the VM dies under VMware's feet
        async with asyncio.timeout(20):
            while not any(e["action"] == "vm.stopped" for e in events):
                line = await stream.content.readline()
                events.append(json.loads(line))
    errors = [e for e in events if e["action"] == "log.error"]
    assert errors and "VMware VM vm1 has stopped without the server asking" in errors[0]["event"]["message"]
    assert [e["action"] for e in events].index("log.error") < [e["action"] for e in events].index("vm.stopped")
    stopped = next(e for e in events if e["action"] == "vm.stopped")
    assert stopped["event"]["vm_id"] == vm["vm_id"] and stopped["event"]["status"] == "stopped"
    assert (await api.get(url)).json["status"] == "stopped"
    assert vmx.read_bytes() == before  # the VMX is put back as after a normal stop
    # The project is intact: the VM starts again.
    assert (await api.post(f"{url}/start")).status == 204
    assert (await api.post(f"{url}/stop")).status == 204


def arp_request(source_mac: bytes, source_ip: str, target_ip: str) -> bytes:
    return (b"\xff" * 6 + source_mac + b"\x08\x06" + bytes.fromhex("0001080006040001") + source_mac
            + socket.inet_aton(source_ip) + b"\x00" * 6 + socket.inet_aton(target_ip)).ljust(60, b"\x00")


async def test_a_tap_link_reaches_the_guest(api, project, standin) -> None:
    """nio_tap (released 1.5.x): the host TAP interface is bridged to the adapter's VMnet like a UDP tunnel."""
    require_data_plane()
    vmx = standin.make_vm("guest", ips={0: "10.69.0.2"})
    vm = await create_vm(api, project, vmx, adapters=1)
    url = vm_url(project, vm)
    tap = f"gvt{os.getpid() % 100000}"
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_tap", "tap_device": tap})).status == 201
    assert (await api.post(f"{url}/start")).status == 204
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as raw:
            raw.bind((tap, 0))
            raw.settimeout(0.5)
            mac = bytes.fromhex("020000000001")
            replies = []
            for _ in range(10):  # the first frames may go out before the bridge reads
                raw.send(arp_request(mac, "10.69.0.1", "10.69.0.2"))
                try:
                    frame = await asyncio.to_thread(raw.recv, 2048)
                except TimeoutError:
                    continue
                if frame[:6] == mac and frame[20:22] == b"\x00\x02":
                    replies.append(frame)
                    break
        assert replies, "no ARP reply from the stand-in guest through the TAP link"
        assert replies[0][6:9] == b"\x00\x0c\x29" and socket.inet_ntoa(replies[0][28:32]) == "10.69.0.2"
    finally:
        assert (await api.post(f"{url}/stop")).status == 204
    assert tap not in {name for _, name in socket.if_nameindex()}  # the bridge's own TAP went with it


async def test_a_console_port_taken_meanwhile_moves(api, project, standin, gns3_server) -> None:
    require_data_plane()
    vm = await create_vm(api, project, standin.make_vm("console-vm"), enable_remote_console=True)
    url = vm_url(project, vm)
    with socket.socket() as squatter:  # another program took the port after the server handed it out
        squatter.bind((gns3_server.console_host, vm["console"]))
        squatter.listen()
        assert (await api.post(f"{url}/start")).status == 204
        moved = (await api.get(url)).json["console"]
        assert moved != vm["console"]
        reader, writer = await asyncio.open_connection(gns3_server.console_host, moved)
        writer.write(b"hostname\r")
        await read_until(reader, b"console-vm$ ")
        writer.close()
    assert (await api.post(f"{url}/stop")).status == 204
