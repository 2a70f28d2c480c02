"""A GNS3 1.5.4 desktop client's VirtualBox session against a real gns3server configured with the stand-in.

The plugin is loaded from its installed entry point and finds VBoxManage through the INI file
(`[VirtualBox] vboxmanage_path`). Requests are shaped as the 1.5.4 client sends them: a JSON body on every request
(GET and DELETE included) and `data_link_type` on start_capture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from vbox_lab import BASE_VM, StandIn, private_port_ranges

from gns3core.testing.server import ServerProcess, write_config

pytestmark = pytest.mark.timeout(240)


def call(server: ServerProcess, method: str, path: str, body: object = None) -> tuple[int, object]:
    request = urllib.request.Request(server.url + path, data=json.dumps(body if body is not None else {}).encode(),
                                     method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as reply:  # generous: CI machines may be loaded
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, (json.loads(raw) if raw else None)


def test_client_lists_creates_links_starts_stops_deletes(standin: StandIn, tmp_path: Path) -> None:
    config = write_config(tmp_path / "gns3_server.conf", tmp_path, Server=private_port_ranges(),
                          VirtualBox={"vboxmanage_path": standin.program})
    env = {**os.environ, "TMPDIR": str(standin.pipes)}
    listing = subprocess.run([sys.executable, "-m", "gns3core", "--config", str(config), "--list-plugins"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert "virtualbox" in listing.stdout and "7.0.14_standin" in listing.stdout, listing.stdout

    server = ServerProcess(config, plugins="virtualbox", env=env, log=tmp_path / "server.log").start(timeout=120)
    try:
        status, version = call(server, "GET", "/v1/version")
        assert status == 200 and version["version"] == "1.5.4"
        status, project = call(server, "POST", "/v1/projects", {"name": "lab", "temporary": False})
        pid = project["project_id"]
        status, vms = call(server, "GET", "/v1/virtualbox/vms")
        assert status == 200 and {"vmname": BASE_VM, "ram": 256} in vms
        status, vm = call(server, "POST", f"/v1/projects/{pid}/virtualbox/vms", {
            "name": "VM1-1", "vmname": BASE_VM, "linked_clone": True, "adapters": 2, "use_any_adapter": False,
            "adapter_type": "Intel PRO/1000 MT Desktop (82540EM)", "headless": True, "acpi_shutdown": False,
            "enable_remote_console": False, "ram": 256})
        assert status == 201, vm
        url = f"/v1/projects/{pid}/virtualbox/vms/{vm['vm_id']}"
        status, port = call(server, "POST", f"/v1/projects/{pid}/ports/udp")
        nio = {"type": "nio_udp", "lport": port["udp_port"], "rhost": "127.0.0.1", "rport": port["udp_port"] + 1}
        assert call(server, "POST", f"{url}/adapters/1/ports/0/nio", nio) == (201, nio)
        status, capture = call(server, "POST", f"{url}/adapters/1/ports/0/start_capture",
                               {"capture_file_name": "VM1-1_Ethernet1_to_PC1.pcap", "data_link_type": "DLT_EN10MB"})
        assert status == 200 and capture["pcap_file_path"].endswith("VM1-1_Ethernet1_to_PC1.pcap")
        assert call(server, "POST", f"{url}/start") == (204, None)
        assert standin.info("VM1-1")["VMState"] == "running"
        assert call(server, "GET", url)[1]["status"] == "started"
        assert call(server, "POST", f"{url}/stop") == (204, None)
        assert standin.info("VM1-1")["VMState"] == "poweroff"
        assert call(server, "DELETE", f"{url}/adapters/1/ports/0/nio") == (204, None)
        assert call(server, "DELETE", url) == (204, None)
        assert "VM1-1" not in standin.vms()  # the clone was handed back to its directory and unregistered
        assert call(server, "POST", f"/v1/projects/{pid}/close")[0] == 204
    finally:
        server.stop(timeout=120)  # the server powers its VMs off before it exits
    assert "Traceback" not in (tmp_path / "server.log").read_text()
