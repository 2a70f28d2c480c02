"""One lab across two "hosts": two real gns3server processes in two network namespaces joined by a veth, each bound
to its namespace's address with authentication on, wired together by UDP tunnels whose rhost is the other server.

Server A keeps the default `udp_host` (all addresses, dual-stack where there is IPv6); server B binds its tunnels to
its own address. Both hand out MAC addresses from their own base (the default). Checked across the hosts: VPCS to
VPCS, a Qemu guest to a VPCS, PCs on both servers behind a dynamips switch on one of them (with the same VPCS MAC
offset on both servers, which collided before each server had its own base), and a capture on the cross-host link.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from netns import Console, Host, TwoHosts  # noqa: E402

from gns3core.testing import require  # noqa: E402

pytestmark = pytest.mark.timeout(600)

REPLY = r"{ip} icmp_seq=\d+ ttl=64"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require(os.geteuid() == 0, "network namespaces need root")
    for program in ("ip", "vpcs", "qemu-system-x86_64", "dynamips", "tshark", "tcpdump"):
        require(shutil.which(program) is not None, f"{program} is not installed (scripts/system-packages.sh)")
    from gns3_qemu import guest as guest_builder

    try:
        guest = guest_builder.build()
    except guest_builder.GuestUnavailable as exc:
        require(False, f"the Qemu test guest cannot be built: {exc}")
        raise
    lab = TwoHosts(tmp_path_factory.mktemp("two-hosts"))
    try:
        lab.create()
        images = lab.a.workdir / "images" / "QEMU"
        images.mkdir(parents=True)
        shutil.copy2(guest.kernel, images / "vmlinuz")
        shutil.copy2(guest.initrd, images / "initrd.gz")
        lab.a.start(lab.a.write_config())
        lab.b.start(lab.b.write_config(udp_host=lab.b.address))
        yield lab
    finally:
        killed = lab.remove()
        assert not lab.exists(), "the test's namespaces are still there"
        assert killed == [], f"processes left in the namespaces after the servers stopped: {killed}"


def project_on_both(lab: TwoHosts, name: str) -> str:
    """The same project id on every server, as a multi-host lab needs."""
    project_id = str(uuid.uuid4())
    for host in (lab.a, lab.b):
        reply = host.ok("POST", "/v1/projects", {"name": name, "project_id": project_id})
        assert reply["project_id"] == project_id
    return project_id


def vpcs(host: Host, pid: str, name: str, ip: str) -> dict[str, Any]:
    return host.ok("POST", f"/v1/projects/{pid}/vpcs/vms",
                   {"name": name, "startup_script": f"set pcname {name}\nip {ip} 24\n"})


def udp_port(host: Host, pid: str) -> int:
    return host.ok("POST", f"/v1/projects/{pid}/ports/udp")["udp_port"]


def link(host: Host, url: str, lport: int, peer: Host, rport: int, adapter: int = 0) -> None:
    """A NIO whose rhost is the peer server's address, as that server reaches it."""
    nio = {"type": "nio_udp", "lport": lport, "rhost": peer.address, "rport": rport}
    assert host.ok("POST", f"{url}/adapters/{adapter}/ports/0/nio", nio) == nio


def started_console(host: Host, pid: str, vm: dict[str, Any]) -> Console:
    url = f"/v1/projects/{pid}/vpcs/vms/{vm['vm_id']}"
    assert host.ok("POST", f"{url}/start")["status"] == "started"
    console = Console(host, vm["console"], f"{vm['name']}> ")
    console.read_until(f"{vm['name']}> ", 15)  # the startup script ran
    return console


def test_servers_answer_on_their_namespace_address_only_with_credentials(hosts: TwoHosts) -> None:
    for host in (hosts.a, hosts.b):
        assert host.api("GET", "/v1/version", auth=False)[0] == 401
        status, version = host.api("GET", "/v1/version")
        assert status == 200 and version["local"] is False
    log_a, log_b = hosts.a.log.read_text(), hosts.b.log.read_text()
    assert re.search(r"UDP tunnels bind to (::|0\.0\.0\.0) \(\[Server\] udp_host\)", log_a), log_a
    assert f"UDP tunnels bind to {hosts.b.address} ([Server] udp_host)" in log_b, log_b


def test_vpcs_to_vpcs_across_the_hosts(hosts: TwoHosts, tmp_path: Path) -> None:
    a, b = hosts.a, hosts.b
    pid = project_on_both(hosts, "vpcs-pair")
    pc1, pc2 = vpcs(a, pid, "PC1", "10.77.1.1"), vpcs(b, pid, "PC2", "10.77.1.2")
    port1, port2 = udp_port(a, pid), udp_port(b, pid)
    link(a, f"/v1/projects/{pid}/vpcs/vms/{pc1['vm_id']}", port1, b, port2)
    link(b, f"/v1/projects/{pid}/vpcs/vms/{pc2['vm_id']}", port2, a, port1)
    # The tunnel really crosses the veth between the namespaces: watch it from B's side.
    pcap = tmp_path / "veth.pcap"
    tcpdump = subprocess.Popen(["ip", "netns", "exec", b.name, "tcpdump", "-i", hosts.veth[1], "-U", "-n", "-w",
                                str(pcap), "udp", "port", str(port2)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    consoles = []
    try:
        consoles = [started_console(a, pid, pc1), started_console(b, pid, pc2)]
        output = consoles[0].command("ping 10.77.1.2 -c 3", timeout=30)
        assert len(re.findall(REPLY.format(ip=r"10\.77\.1\.2"), output)) >= 2, output
        arp = consoles[0].command("arp")
        # PC2's address as PC1 learnt it: server B's own VPCS address for offset 0, not GNS3's shared one.
        assert "00:50:79:66:68:00" not in arp and re.search(r"([0-9a-f]{2}:){3}00:00:00\s+10\.77\.1\.2", arp), arp
    finally:
        for console in consoles:
            console.close()
        tcpdump.terminate()
        tcpdump.wait(10)
    # Each frame is Ethernet in UDP in IP on the veth: the first occurrence of a field is the tunnel's, the last the
    # lab's.
    decoded = subprocess.run(["tshark", "-r", str(pcap), "-d", f"udp.port=={port2},eth", "-Y", "icmp", "-T",
                              "fields", "-E", "occurrence=a", "-e", "ip.src", "-e", "eth.src"],
                             capture_output=True, text=True, check=False)
    assert decoded.returncode == 0, decoded.stderr
    rows = [[field.split(",") for field in line.split("\t")] for line in decoded.stdout.splitlines()]
    assert rows and all(len(ips) == 2 and ips[0] in (a.address, b.address) for ips, _ in rows), rows  # host to host
    from_a = {macs[-1] for ips, macs in rows if ips[-1] == "10.77.1.1"}
    from_b = {macs[-1] for ips, macs in rows if ips[-1] == "10.77.1.2"}
    assert len(from_a) == 1 and len(from_b) == 1 and from_a != from_b, rows
    assert not any(mac.startswith("00:50:79:66:68") for mac in from_a | from_b), rows
    for host in (a, b):
        host.ok("DELETE", f"/v1/projects/{pid}")


def test_qemu_guest_to_vpcs_across_the_hosts(hosts: TwoHosts) -> None:
    a, b = hosts.a, hosts.b
    pid = project_on_both(hosts, "qemu-vpcs")
    guest = a.ok("POST", f"/v1/projects/{pid}/qemu/vms", {
        "name": "guest", "qemu_path": "qemu-system-x86_64", "ram": 128, "kernel_image": "vmlinuz",
        "initrd": "initrd.gz", "kernel_command_line": "console=ttyS0 quiet panic=-1 guestip=10.77.2.3/24"})
    pc = vpcs(b, pid, "PC3", "10.77.2.1")
    guest_port, pc_port = udp_port(a, pid), udp_port(b, pid)
    guest_url = f"/v1/projects/{pid}/qemu/vms/{guest['vm_id']}"
    link(a, guest_url, guest_port, b, pc_port)
    link(b, f"/v1/projects/{pid}/vpcs/vms/{pc['vm_id']}", pc_port, a, guest_port)
    vpc = started_console(b, pid, pc)
    started = a.ok("POST", f"{guest_url}/start")
    # Qemu binds its tunnel on all addresses (udp_host), not on the API address.
    assert f"localaddr=0.0.0.0:{guest_port}" in started["command_line"], started["command_line"]
    serial = Console(a, guest["console"], "guest# ")
    try:
        serial.read_until("guest# ", 120)
        macs = serial.command("cat /sys/class/net/eth0/address")
        base = guest["mac_address"]
        assert base in macs and not base.startswith("00:00:ab:"), (base, macs)  # server A's own MAC base
        output = serial.command("ping -c 3 -W 2 10.77.2.1", timeout=40)
        assert re.search(r"[23] packets received", output), output
        output = vpc.command("ping 10.77.2.3 -c 2", timeout=30)
        assert len(re.findall(REPLY.format(ip=r"10\.77\.2\.3"), output)) >= 1, output
    finally:
        serial.close()
        vpc.close()
    for host in (a, b):
        host.ok("DELETE", f"/v1/projects/{pid}")


def test_switch_on_one_host_with_pcs_on_both_and_a_capture(hosts: TwoHosts) -> None:
    """A dynamips switch on A; PC-A on A and PC-B on B, both with VPCS MAC offset 0 (GNS3 gave both
    00:50:79:66:68:00, which a switch cannot tell apart); a capture on the switch port of the cross-host link."""
    a, b = hosts.a, hosts.b
    pid = project_on_both(hosts, "switch")
    switch = a.ok("POST", f"/v1/projects/{pid}/dynamips/devices", {"name": "SW1", "device_type": "ethernet_switch"})
    switch_url = f"/v1/projects/{pid}/dynamips/devices/{switch['device_id']}"
    pc_a, pc_b = vpcs(a, pid, "PCA", "10.77.3.1"), vpcs(b, pid, "PCB", "10.77.3.2")
    ports = {"sw1": udp_port(a, pid), "sw2": udp_port(a, pid), "pca": udp_port(a, pid), "pcb": udp_port(b, pid)}
    settings = {"type": "access", "vlan": 1, "ethertype": ""}
    a.ok("POST", f"{switch_url}/ports/1/nio", {"nio": {"type": "nio_udp", "lport": ports["sw1"],
                                                       "rhost": a.address, "rport": ports["pca"]},
                                               "port_settings": settings})
    a.ok("POST", f"{switch_url}/ports/2/nio", {"nio": {"type": "nio_udp", "lport": ports["sw2"],
                                                       "rhost": b.address, "rport": ports["pcb"]},
                                               "port_settings": settings})
    link(a, f"/v1/projects/{pid}/vpcs/vms/{pc_a['vm_id']}", ports["pca"], a, ports["sw1"])
    link(b, f"/v1/projects/{pid}/vpcs/vms/{pc_b['vm_id']}", ports["pcb"], a, ports["sw2"])
    capture = a.ok("POST", f"{switch_url}/ports/2/start_capture",
                   {"capture_file_name": "cross-host.pcap", "data_link_type": "DLT_EN10MB"})
    pcap = Path(capture["pcap_file_path"])
    consoles = []
    try:
        consoles = [started_console(a, pid, pc_a), started_console(b, pid, pc_b)]
        output = consoles[1].command("ping 10.77.3.1 -c 3", timeout=30)
        assert len(re.findall(REPLY.format(ip=r"10\.77\.3\.1"), output)) >= 2, output
        output = consoles[0].command("ping 10.77.3.2 -c 3", timeout=30)
        assert len(re.findall(REPLY.format(ip=r"10\.77\.3\.2"), output)) >= 2, output
    finally:
        for console in consoles:
            console.close()
        a.ok("POST", f"{switch_url}/ports/2/stop_capture")
    assert pcap.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), "not a pcap file"
    info = subprocess.run(["capinfos", "-t", "-c", str(pcap)], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and "pcap" in info.stdout, info.stdout + info.stderr
    decoded = subprocess.run(["tshark", "-r", str(pcap), "-Y", "icmp", "-T", "fields", "-e", "ip.src", "-e",
                              "eth.src", "-e", "icmp.type"], capture_output=True, text=True, check=False)
    assert decoded.returncode == 0, decoded.stderr
    rows = [line.split("\t") for line in decoded.stdout.splitlines()]
    requests_from_b = [row for row in rows if row[0] == "10.77.3.2" and row[2] == "8"]
    replies_from_a = [row for row in rows if row[0] == "10.77.3.1" and row[2] == "0"]
    assert len(requests_from_b) >= 2 and len(replies_from_a) >= 2, rows
    macs = {row[0]: row[1] for row in rows}
    assert macs["10.77.3.1"] != macs["10.77.3.2"], macs  # same offset 0 on each server, different addresses
    assert macs["10.77.3.1"].endswith(":00:00:00") and macs["10.77.3.2"].endswith(":00:00:00"), macs
    for host in (a, b):
        host.ok("DELETE", f"/v1/projects/{pid}")
