"""A real VPCS pings a VirtualBox VM (the stand-in's VM process) over a UDP link the VM speaks itself.

The link is removed and added again while the VM runs (controlvm), and the pcap VirtualBox writes (nictrace; here
the stand-in's VM process) holds the frames of both pings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from vbox_lab import BASE_VM, StandIn

from gns3core.testing import require
from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.vpcs import VPCSProcess

pytestmark = pytest.mark.timeout(300)


def replies(output: str) -> int:
    return len(re.findall(r"10\.0\.0\.2 icmp_seq=\d+ ttl=\d+", output))


async def test_vpcs_pings_vm_through_relinked_udp_nio_and_capture(api, project, standin: StandIn,
                                                                     tmp_path: Path) -> None:
    require(shutil.which("vpcs") is not None, "vpcs is not installed (apt-get install vpcs)")
    require(shutil.which("tshark") is not None and shutil.which("capinfos") is not None,
            "tshark is not installed (apt-get install tshark)")
    pid = project["project_id"]
    standin.run("setextradata", BASE_VM, "VBoxStandIn/GuestIP", "10.0.0.2/24")
    vm = (await api.post(f"/v1/projects/{pid}/virtualbox/vms",
                         {"name": "vbox", "vmname": BASE_VM, "linked_clone": False, "adapters": 1})).json
    url = f"/v1/projects/{pid}/virtualbox/vms/{vm['vm_id']}"
    vm_port = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    vpcs_port = free_vpcs_udp_port()
    nio = {"type": "nio_udp", "lport": vm_port, "rhost": "127.0.0.1", "rport": vpcs_port}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    capture = await api.post(f"{url}/adapters/0/ports/0/start_capture",
                             {"capture_file_name": "vbox-vpcs.pcap", "data_link_type": "DLT_EN10MB"})
    assert capture.status == 200
    pcap = capture.json["pcap_file_path"]
    vpcs = VPCSProcess(tmp_path / "vpcs", free_tcp_port(), vpcs_port, vm_port, startup=["ip 10.0.0.1 24"])
    try:
        vpcs.start()
        await vpcs.wait_console_async()
        assert (await api.post(f"{url}/start")).status == 204

        assert replies(await vpcs.command_async("ping 10.0.0.2 -c 3")) >= 2

        assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
        assert replies(await vpcs.command_async("ping 10.0.0.2 -c 2")) == 0  # unplugged: no answer

        assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
        assert replies(await vpcs.command_async("ping 10.0.0.2 -c 3")) >= 2
    finally:
        vpcs.stop()
        assert (await api.post(f"{url}/stop")).status == 204

    count = subprocess.run(["capinfos", "-T", "-c", pcap], capture_output=True, text=True, check=True).stdout
    assert int(count.strip().split()[-1]) >= 8
    assert subprocess.run(["capinfos", "-t", pcap], capture_output=True, text=True, check=True).stdout.count(
        "Wireshark/tcpdump/... - pcap") == 1
    decoded = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "icmp.type", "-e", "arp.opcode"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert decoded.count("8") >= 4 and decoded.count("0") >= 4  # echo requests and replies of both pings
    assert "2" in decoded  # the guest's ARP reply
