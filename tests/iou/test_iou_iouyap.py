"""With `[IOU] iouyap_path` set the server runs that iouyap (here the iouyap stand-in) instead of linking IOU itself:
iouyap.ini is written, changed links and captures reach iouyap by SIGHUP, and its death stops the VM."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from iou_helpers import ROUTER_CONFIG, create_iou, vm_url
from test_iou_links import capinfos, tshark, udp_port

from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.vpcs import VPCSProcess


@pytest.fixture
def iou_config(tmp_path: Path) -> dict[str, str]:
    wrapper = tmp_path / "bin" / "iouyap"
    wrapper.parent.mkdir()
    script = Path(__file__).with_name("iouyap_standin.py")
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return {"iouyap_path": str(wrapper)}


async def test_iouyap_links_captures_and_crash(api, project, standin_image, vpcs_path, capture_tools, notifications,
                                               gns3_server, tmp_path: Path):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, startup_config_content=ROUTER_CONFIG.format(address="10.41.0.1"))
    url = vm_url(pid, vm["vm_id"])
    reply = await api.post(url + "/start", {})
    assert reply.status == 200, reply
    directory = Path(vm["vm_directory"])
    appid = gns3_server.emulators["iou"].vms[vm["vm_id"]].application_id
    assert "iouyap stand-in: node" in (directory / "iouyap.log").read_text()
    iou_port, vpcs_port = await udp_port(api, pid), free_vpcs_udp_port()
    vpcs = VPCSProcess(tmp_path / "vpcs", free_tcp_port(), vpcs_port, iou_port, startup=["ip 10.41.0.2 24"])
    vpcs.start()
    try:
        await vpcs.wait_console_async()
        reply = await api.post(url + "/adapters/0/ports/0/nio", {"type": "nio_udp", "lport": iou_port,
                                                                 "rhost": "127.0.0.1", "rport": vpcs_port})
        assert reply.status == 201
        ini = (directory / "iouyap.ini").read_text()
        assert f"[{appid + 512}:0/0]\ntunnel_udp = {iou_port}:127.0.0.1:{vpcs_port}" in ini
        reply = await api.post(url + "/adapters/0/ports/0/start_capture",
                               {"capture_file_name": "yap.pcap", "data_link_type": "DLT_EN10MB"})
        pcap = reply.json["pcap_file_path"]
        assert f"pcap_file = {pcap}\npcap_protocol = ethernet\npcap_overwrite = y" in \
            (directory / "iouyap.ini").read_text()
        output = await vpcs.command_async("ping 10.41.0.1 -c 2", timeout=30)
        assert output.count("icmp_seq") == 2, output
        assert (await api.post(url + "/adapters/0/ports/0/stop_capture")).status == 204
    finally:
        vpcs.stop()
    assert capinfos(pcap)["File encapsulation"] == "ether"
    assert len(tshark(pcap, "icmp.type == 0 && ip.src == 10.41.0.1")) == 2
    # iouyap dies: IOU goes down with it and the server says so.
    live = gns3_server.emulators["iou"].vms[vm["vm_id"]]
    os.kill(live._iouyap.pid, signal.SIGKILL)
    error = await notifications.wait_for("log.error")
    assert "iouyap process has stopped, return code: -9" in error["event"]["message"]
    await notifications.wait_for("vm.stopped")
    assert (await api.get(url)).json["status"] == "stopped"


@pytest.mark.parametrize("iou_config", [{"iouyap_path": "/nonexistent/iouyap"}])
async def test_a_missing_iouyap_is_named(api, project, standin_image, iou_config):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image)
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", {})
    assert reply.status == 409 and reply.json["message"].startswith("iouyap is necessary to start IOU")
