"""A server killed with SIGKILL while VPCS run: its vpcs die with it, and a restart reclaims the VPCs they forked,
so the reopened VMs get their console ports back."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
from vpcs_helpers import CONSOLE_RANGE, UDP_RANGE

from gns3core.testing.server import ServerProcess, write_config

pytestmark = pytest.mark.usefixtures("vpcs_binary")
COUNT = 3


def processes_in(directory: Path) -> list[psutil.Process]:
    root = os.path.realpath(directory)
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and (os.path.realpath(cwd) + os.sep).startswith(root + os.sep):
            found.append(proc)
    return found


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_sigkill_then_restart_leaves_no_orphans_and_same_consoles(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gns3_server.conf", tmp_path, Server={
        "console_start_port_range": CONSOLE_RANGE[0], "console_end_port_range": CONSOLE_RANGE[1],
        "udp_start_port_range": UDP_RANGE[0], "udp_end_port_range": UDP_RANGE[1]})
    projects = tmp_path / "projects"
    pid = str(uuid.uuid4())
    first = ServerProcess(config, plugins="vpcs").start()
    try:
        assert first.request("POST", "/v1/projects", {"name": "lab", "project_id": pid})[0] == 201
        vms = []
        for index in range(COUNT):
            status, vm = first.request("POST", f"/v1/projects/{pid}/vpcs/vms", {"name": f"PC{index}"})
            assert status == 201
            udp = first.request("POST", f"/v1/projects/{pid}/ports/udp")[1]["udp_port"]
            peer = first.request("POST", f"/v1/projects/{pid}/ports/udp")[1]["udp_port"]
            nio = {"type": "nio_udp", "lport": udp, "rhost": "127.0.0.1", "rport": peer}
            url = f"/v1/projects/{pid}/vpcs/vms/{vm['vm_id']}"
            assert first.request("POST", f"{url}/adapters/0/ports/0/nio", nio)[0] == 201
            assert first.request("POST", f"{url}/start")[0] in (200, 204)
            vms.append(vm)
        assert wait_until(lambda: len(processes_in(projects)) >= COUNT)
        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait()
        # The vpcs the server started get SIGTERM when it dies (PR_SET_PDEATHSIG) and end the PCs they forked.
        assert wait_until(lambda: processes_in(projects) == [])
    finally:
        first.kill()
    second = ServerProcess(config, plugins="vpcs").start()
    try:
        assert processes_in(projects) == []  # reclaimed before the first answer
        assert second.request("POST", "/v1/projects", {"name": "lab", "project_id": pid})[0] == 201
        for vm in vms:
            body = {"name": vm["name"], "vm_id": vm["vm_id"], "console": vm["console"]}
            status, again = second.request("POST", f"/v1/projects/{pid}/vpcs/vms", body)
            assert status == 201 and again["console"] == vm["console"]
    finally:
        second.stop()
        second.kill()
    assert wait_until(lambda: processes_in(projects) == [])
