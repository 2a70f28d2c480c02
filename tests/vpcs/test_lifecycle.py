"""Start, stop, reload and crashes with the real vpcs, on an in-process server."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from typing import Any

import pytest
from vpcs_helpers import Console, leftovers, next_event, running

from gns3core.testing.client import ApiClient

pytestmark = pytest.mark.usefixtures("vpcs_binary")


async def wired_vm(api: ApiClient, project: dict[str, Any], name: str = "PC1") -> tuple[str, dict[str, Any]]:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/vpcs/vms", {"name": name})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/vpcs/vms/{reply.json['vm_id']}"
    ports = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in range(2)]
    nio = {"type": "nio_udp", "lport": ports[0], "rhost": "localhost", "rport": ports[1]}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    return url, reply.json


def vpcs_link(gns3_server, vm_id: str) -> Any:
    """The tunnel vpcs itself was started with: its NIO, or the loopback relay when the server hands out its own MAC
    addresses ([Server] mac_base, the default; gns3_vpcs.relay)."""
    vm = gns3_server.emulators["vpcs"].vms[vm_id]
    return vm._relay.vpcs_nio if vm._relay is not None else vm.nio


def pids_of(gns3_server, vm_id: str) -> list[int]:
    vm = gns3_server.emulators["vpcs"].vms[vm_id]
    return [vm._process.pid, vm._vpc.pid]


async def test_start_console_stop(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm = await wired_vm(api, project)
    assert vm["command_line"] == ""  # nothing started yet
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        # The released 1.5.x line answers start with 200 and the VM object, the seed with 204: the release wins
        # (api-1.5-release §15 #2), since the 1.5.4 client reads `command_line` from it.
        reply = await api.post(f"{url}/start")
        assert reply.status == 200 and reply.json["status"] == "started"
        nio = vpcs_link(gns3_server, vm["vm_id"])
        argv = reply.json["command_line"].split(" ")
        assert argv[0].endswith("vpcs") and ["-p", str(vm["console"])] == argv[1:3]
        assert ["-s", str(nio.lport), "-c", str(nio.rport)] == argv[argv.index("-s"):argv.index("-s") + 4]
        assert (await api.get(url)).json["command_line"] == reply.json["command_line"]
        started = await next_event(stream, "vm.started")
        assert started["event"]["vm_id"] == vm["vm_id"] and started["event"]["status"] == "started"
        assert (await api.get(url)).json["status"] == "started"
        pids = pids_of(gns3_server, vm["vm_id"])
        # The console listens as soon as start answers (no retry here), and the server has not eaten the banner.
        console = await Console.open(vm["console"], timeout=0)
        try:
            await console.read_until(re.compile(rb"Welcome to Virtual PC Simulator"), 5)
            nio = vpcs_link(gns3_server, vm["vm_id"])
            shown = await console.command("show ip")
            assert f"LPORT       : {nio.lport}" in shown and f"127.0.0.1:{nio.rport}" in shown, shown
        finally:
            await console.close()
        again = await api.post(f"{url}/start")  # already running: nothing happens, the same object comes back
        assert again.status == 200 and again.json == reply.json
        assert pids_of(gns3_server, vm["vm_id"]) == pids
        reply = await api.put(url, {"console": vm["console"] + 1})
        assert reply.status == 409 and "stop it first" in reply.json["message"]
        assert (await api.post(f"{url}/stop")).status == 204
        stopped = await next_event(stream, "vm.stopped")
        assert stopped["event"]["status"] == "stopped"
        assert leftovers(pids) == []  # both processes ended and reaped: not even a zombie
        assert (await api.post(f"{url}/stop")).status == 204  # stopping a stopped VPCS still says so
        await next_event(stream, "vm.stopped")


async def test_reload_restarts(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm = await wired_vm(api, project)
    assert (await api.post(f"{url}/start")).status == 200
    before = pids_of(gns3_server, vm["vm_id"])
    assert (await api.post(f"{url}/reload")).status == 204
    after = pids_of(gns3_server, vm["vm_id"])
    assert after != before and leftovers(before) == [] and running(after) == after
    assert (await api.delete(url)).status == 204
    assert leftovers(after) == []


def niceness(pid: int) -> tuple[int, int | None]:
    """(nice value, autogroup nice) of a process. The autogroup is None where it does not apply: a kernel without
    autogroups has no file, and one whose process sits in a CPU cgroup other than the root (containers, CI runners)
    leaves it empty."""
    with open(f"/proc/{pid}/stat") as stat:
        nice = int(stat.read().rsplit(")", 1)[1].split()[16])
    try:
        with open(f"/proc/{pid}/autogroup") as group:
            words = group.read().split()
    except FileNotFoundError:
        return nice, None
    return nice, int(words[words.index("nice") + 1]) if "nice" in words else None


async def test_vpcs_runs_below_the_server(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    """vpcs 0.5b2 busy-loops: it and its VPC run at nice 19 (their session's autogroup too), the server at its own."""
    url, vm = await wired_vm(api, project)
    server_before = niceness(os.getpid())
    assert (await api.post(f"{url}/start")).status == 200
    for pid in pids_of(gns3_server, vm["vm_id"]):
        nice, group = niceness(pid)
        assert nice == 19 and group in (19, None), (pid, nice, group)
    assert niceness(os.getpid()) == server_before
    assert (await api.delete(url)).status == 204


async def test_start_failure_reports_vpcs_output(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm = await wired_vm(api, project)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", vm["console"]))
        squatter.listen()
        reply = await api.post(f"{url}/start")
    assert reply.status == 409
    message = reply.json["message"]
    assert "could not start" in message and "Address already in use" in message, message
    assert f"Another program holds TCP port {vm['console']}" in message
    assert (await api.get(url)).json["status"] == "stopped"
    assert gns3_server.emulators["vpcs"].vms[vm["vm_id"]]._process is None


async def test_crash_is_reported_and_vm_restarts(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm = await wired_vm(api, project)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        assert (await api.post(f"{url}/start")).status == 200
        parent, child = pids_of(gns3_server, vm["vm_id"])
        os.kill(parent, signal.SIGKILL)
        error = await next_event(stream, "log.error")
        assert error["event"]["message"].startswith("VPCS process has stopped, return code: -9")
        stopped = await next_event(stream, "vm.stopped")
        assert stopped["event"]["vm_id"] == vm["vm_id"] and stopped["event"]["status"] == "stopped"
        await asyncio.sleep(0.05)
        assert running([parent, child]) == []  # its orphaned VPC was ended too
        assert (await api.post(f"{url}/start")).status == 200
        assert (await api.get(url)).json["status"] == "started"
        await next_event(stream, "vm.started")


async def test_vpc_death_is_reported(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm = await wired_vm(api, project)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        assert (await api.post(f"{url}/start")).status == 200
        parent, child = pids_of(gns3_server, vm["vm_id"])
        os.kill(child, signal.SIGKILL)
        error = await next_event(stream, "log.error")
        assert f"its virtual PC, pid {child}, ended first" in error["event"]["message"]
        await next_event(stream, "vm.stopped")
        assert leftovers([parent, child]) == []


async def test_project_close_ends_every_vpcs(api: ApiClient, gns3_server) -> None:
    project = (await api.post("/v1/projects", {"name": "closing"})).json
    urls = [(await wired_vm(api, project, f"PC{i}"))[0] for i in range(3)]
    await asyncio.gather(*(api.post(f"{url}/start") for url in urls))
    pids = [pid for vm_id in list(gns3_server.emulators["vpcs"].vms) for pid in pids_of(gns3_server, vm_id)]
    assert len(pids) == 6 and running(pids) == pids
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert leftovers(pids) == []
