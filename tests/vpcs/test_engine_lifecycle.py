"""The built-in engine's lifecycle through the API: start, console, stop, reload, crashes, quit, links, save.

An in-process server with `[VPCS] backend = builtin`; the PCs run in a real worker process it spawns.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from typing import Any

import psutil
import pytest
from vpcs_helpers import Console, next_event

from gns3core.testing.client import ApiClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def vpcs_backend() -> str:
    return "builtin"


async def wired_vm(api: ApiClient, project: dict[str, Any], name: str = "PC1", ports: tuple[int, int] | None = None,
                   **body: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A VM with a UDP NIO (to a port nobody listens on unless `ports` is given); (url, vm, nio)."""
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/vpcs/vms", {"name": name, **body})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/vpcs/vms/{reply.json['vm_id']}"
    if ports is None:
        ports = ((await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"],
                 (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"])
    nio = {"type": "nio_udp", "lport": ports[0], "rhost": "127.0.0.1", "rport": ports[1]}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    return url, reply.json, nio


async def linked_pair(api: ApiClient, project: dict[str, Any], scripts: tuple[str, str] = ("", "")):
    """Two VMs whose tunnels point at each other."""
    pid = project["project_id"]
    a, b = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in range(2)]
    first = await wired_vm(api, project, "PC1", (a, b), startup_script=scripts[0] or None)
    second = await wired_vm(api, project, "PC2", (b, a), startup_script=scripts[1] or None)
    return first, second


def worker_of(gns3_server) -> psutil.Process:
    workers = [w for w in gns3_server.emulators["vpcs"].engine.workers if w.alive]
    assert len(workers) == 1
    return psutil.Process(workers[0].pid)


async def engine_status(gns3_server) -> dict[str, Any]:
    worker = next(w for w in gns3_server.emulators["vpcs"].engine.workers if w.alive)
    return await worker.request("status")


def bindable(kind: int, port: int) -> bool:
    """Nobody holds the port (a connection the PC closed may linger in TIME_WAIT: the engine rebinds over it)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_start_console_stop(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm, nio = await wired_vm(api, project)
    assert vm["command_line"] == ""
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        reply = await api.post(f"{url}/start")
        assert reply.status == 200 and reply.json["status"] == "started"
        assert reply.json["command_line"].startswith("built-in VPCS engine (worker pid ")
        assert f"-p {vm['console']} -m 0 -i 1 -s {nio['lport']} -c {nio['rport']} -t 127.0.0.1" in \
            reply.json["command_line"]
        started = await next_event(stream, "vm.started")
        assert started["event"]["vm_id"] == vm["vm_id"] and started["event"]["status"] == "started"
        # The console listens as soon as start answers, and its first client gets the banner.
        console = await Console.open(vm["console"], timeout=0)
        try:
            banner = await console.read_until(re.compile(rb"Press '\?' to get help\.\n\nVPCS> $"), 10)
            assert b"Welcome to Virtual PC Simulator, version 0.5b2" in banner
            shown = await console.command("show ip")
            assert f"LPORT       : {nio['lport']}" in shown and f"127.0.0.1:{nio['rport']}" in shown, shown
            assert f"MAC         : {gns3_server.mac_base.vpcs(0)}" in shown  # the server's own base
        finally:
            await console.close()
        again = await api.post(f"{url}/start")  # already running: nothing happens
        assert again.status == 200 and again.json == reply.json
        assert (await api.post(f"{url}/stop")).status == 204
        stopped = await next_event(stream, "vm.stopped")
        assert stopped["event"]["status"] == "stopped"
        # its console and tunnel ports are free once stop answered
        assert bindable(socket.SOCK_STREAM, vm["console"]) and bindable(socket.SOCK_DGRAM, nio["lport"])
        assert (await api.post(f"{url}/stop")).status == 204
        await next_event(stream, "vm.stopped")
    assert (await engine_status(gns3_server))["pcs"] == 0


async def test_idle_pcs_schedule_nothing(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    """After booting and answering pings, idle PCs leave no timer in the worker's event loop."""
    (url1, vm1, _), (url2, vm2, _) = await linked_pair(api, project, ("ip 10.0.0.1 24", "ip 10.0.0.2 24"))
    for url in (url1, url2):
        assert (await api.post(f"{url}/start")).status == 200
    console = await Console.open(vm2["console"])
    try:
        await console.read_until(re.compile(rb"PC1 : 10\.0\.0\.2 .*VPCS> $", re.DOTALL), 15)
        output = await console.command("ping 10.0.0.1 -c 2")
        assert len(re.findall(r"10\.0\.0\.1 icmp_seq=\d ttl=64 time=", output)) == 2, output
    finally:
        await console.close()
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        status = await engine_status(gns3_server)
        if status["timers"] == 0 and status["commands_running"] == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.2)
    assert status["pcs"] == 2
    cpu = worker_of(gns3_server).cpu_times()
    await asyncio.sleep(1.0)
    later = worker_of(gns3_server).cpu_times()
    assert (later.user + later.system) - (cpu.user + cpu.system) < 0.05  # a generous bound: idle means idle


async def test_reload_boots_a_fresh_pc(api: ApiClient, project: dict[str, Any]) -> None:
    url, vm, _ = await wired_vm(api, project, startup_script="set pcname first\n")
    assert (await api.post(f"{url}/start")).status == 200
    console = await Console.open(vm["console"])
    try:
        await console.read_until(re.compile(rb"first> $"), 10)
        await console.command("set pcname changed")
    finally:
        await console.close()
    assert (await api.post(f"{url}/reload")).status == 204
    console = await Console.open(vm["console"])
    try:
        booted = await console.read_until(re.compile(rb"first> $"), 10)
        assert b"Welcome to Virtual PC Simulator" in booted and b"Executing the startup file" in booted
    finally:
        await console.close()


async def test_console_port_taken(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    url, vm, _ = await wired_vm(api, project)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", vm["console"]))
        squatter.listen()
        reply = await api.post(f"{url}/start")
    assert reply.status == 409
    message = reply.json["message"]
    assert message.startswith(f"VPCS {vm['name']} could not start: cannot listen on console TCP port")
    assert "Address already in use" in message and f"Another program holds TCP port {vm['console']}" in message
    assert (await api.get(url)).json["status"] == "stopped"
    assert (await engine_status(gns3_server))["pcs"] == 0
    assert (await api.post(f"{url}/start")).status == 200  # the port is free again: it starts


async def test_tunnel_port_taken(api: ApiClient, project: dict[str, Any]) -> None:
    url, vm, nio = await wired_vm(api, project)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("0.0.0.0", nio["lport"]))
        reply = await api.post(f"{url}/start")
    assert reply.status == 409 and f"cannot open UDP port {nio['lport']}" in reply.json["message"]
    assert bindable(socket.SOCK_STREAM, vm["console"])  # nothing half-started is left


async def test_killed_worker_is_a_crash_of_each_pc(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    (url1, vm1, _), (url2, vm2, _) = await linked_pair(api, project)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        for url in (url1, url2):
            assert (await api.post(f"{url}/start")).status == 200
        worker = worker_of(gns3_server)
        os.kill(worker.pid, signal.SIGKILL)
        errors, stopped = [], set()
        while len(errors) < 2 or len(stopped) < 2:
            line = await asyncio.wait_for(stream.content.readline(), 10)
            message = json.loads(line)
            if message["action"] == "log.error":
                errors.append(message["event"]["message"])
            elif message["action"] == "vm.stopped":
                stopped.add(message["event"]["vm_id"])
        assert all(m.startswith("VPCS process has stopped, return code: -9") for m in errors), errors
        assert all(f"the built-in VPCS engine, pid {worker.pid}, ended; it ran 2 virtual PCs" in m for m in errors)
        assert stopped == {vm1["vm_id"], vm2["vm_id"]}
        for url in (url1, url2):
            assert (await api.get(url)).json["status"] == "stopped"
        # a new worker takes the next start
        assert (await api.post(f"{url1}/start")).status == 200
        assert worker_of(gns3_server).pid != worker.pid
        console = await Console.open(vm1["console"])
        try:
            assert b"Welcome to Virtual PC Simulator" in await console.read_until(re.compile(rb"VPCS> $"), 10)
        finally:
            await console.close()


async def test_quit_on_the_console_stops_the_vm(api: ApiClient, project: dict[str, Any]) -> None:
    url, vm, _ = await wired_vm(api, project)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        assert (await api.post(f"{url}/start")).status == 200
        console = await Console.open(vm["console"])
        try:
            await console.prompt()
            console.writer.write(b"quit\n")
            await console.writer.drain()
            warning = await next_event(stream, "log.warning")
            assert warning["event"]["message"].startswith("VPCS process has stopped, return code: 0")
            stopped = await next_event(stream, "vm.stopped")
            assert stopped["event"]["vm_id"] == vm["vm_id"]
            rest = await asyncio.wait_for(console.reader.read(), 5)  # read() returns at end of stream: closed
            assert rest.replace(b"\r\n", b"") in (b"", b"quit"), rest
        finally:
            await console.close()
    assert (await api.get(url)).json["status"] == "stopped"
    assert bindable(socket.SOCK_STREAM, vm["console"])


async def test_link_changed_while_running(api: ApiClient, project: dict[str, Any]) -> None:
    """vpcs would need a restart; a built-in PC takes the new NIO at once."""
    pid = project["project_id"]
    (url1, vm1, nio1), (url2, vm2, nio2) = await linked_pair(api, project, ("ip 10.0.0.1 24", "ip 10.0.0.2 24"))
    lonely = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    moved = {**nio2, "rport": lonely}
    assert (await api.post(f"{url2}/adapters/0/ports/0/nio", moved)).status == 201  # PC2 points nowhere
    for url in (url1, url2):
        assert (await api.post(f"{url}/start")).status == 200
    console = await Console.open(vm2["console"])
    try:
        await console.read_until(re.compile(rb"PC1 : 10\.0\.0\.2 .*VPCS> $", re.DOTALL), 15)
        assert "not reachable" in await console.command("ping 10.0.0.1 -c 1", timeout=10)
        assert (await api.post(f"{url2}/adapters/0/ports/0/nio", nio2)).status == 201  # back to PC1
        output = await console.command("ping 10.0.0.1 -c 1", timeout=10)
        assert re.search(r"10\.0\.0\.1 icmp_seq=1 ttl=64 time=", output), output
        assert (await api.delete(f"{url2}/adapters/0/ports/0/nio")).status == 204
        assert "icmp_seq=1 timeout" in await console.command("ping 10.0.0.1 -c 1", timeout=10)
    finally:
        await console.close()


async def test_save_then_restart_keeps_the_address(api: ApiClient, project: dict[str, Any]) -> None:
    url, vm, _ = await wired_vm(api, project)
    assert (await api.post(f"{url}/start")).status == 200
    console = await Console.open(vm["console"])
    try:
        await console.prompt()
        await console.command("set pcname alpha")
        assert "PC1 : 10.1.1.7 255.255.0.0 gateway 10.1.1.1" in await console.command("ip 10.1.1.7 10.1.1.1 16")
        assert ".  done" in await console.command("save")
    finally:
        await console.close()
    saved = (await api.get(url)).json
    assert saved["startup_script"] == "set pcname alpha\nip 10.1.1.7 10.1.1.1 16\n"
    assert saved["startup_script_path"] == "startup.vpc"
    assert (await api.post(f"{url}/stop")).status == 204
    assert (await api.post(f"{url}/start")).status == 200
    console = await Console.open(vm["console"])
    try:
        await console.read_until(re.compile(rb"alpha> $"), 15)
        shown = await console.command("show ip")
        assert "IP/MASK     : 10.1.1.7/16" in shown and "GATEWAY     : 10.1.1.1" in shown, shown
    finally:
        await console.close()


async def test_project_close_ends_every_pc(api: ApiClient, gns3_server) -> None:
    project = (await api.post("/v1/projects", {"name": "closing"})).json
    vms = [await wired_vm(api, project, f"PC{i}") for i in range(3)]
    replies = await asyncio.gather(*(api.post(f"{url}/start") for url, _, _ in vms))
    assert [r.status for r in replies] == [200] * 3
    assert (await engine_status(gns3_server))["pcs"] == 3
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert (await engine_status(gns3_server))["pcs"] == 0
    assert all(bindable(socket.SOCK_STREAM, vm["console"]) for _, vm, _ in vms)


class TestBadBackend:
    @pytest.fixture
    def gns3_config_overrides(self) -> dict[str, dict[str, str]]:
        return {"VPCS": {"backend": "qemu"}}

    async def test_create_names_the_setting(self, api: ApiClient, project: dict[str, Any]) -> None:
        reply = await api.post(f"/v1/projects/{project['project_id']}/vpcs/vms", {"name": "x"})
        assert reply.status == 409
        assert reply.json["message"] == ("Invalid [VPCS] backend 'qemu' in the server configuration: "
                                         "use vpcs or builtin")
