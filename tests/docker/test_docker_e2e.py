"""End to end on a real engine: a busybox container linked by UDP to a real VPCS, driven through the API."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import VPCS, Console, free_udp_port, host_veths, read_notifications, require
from dockerd import TEST_IMAGE, Dockerd

from gns3core.ports import tcp_port_is_free
from gns3core.testing.ports import free_tcp_port

pytestmark = pytest.mark.timeout(240)


def base(project_id: str) -> str:
    return f"/v1/projects/{project_id}/docker/images"


async def create_container(api, project_id: str, **body: Any) -> dict[str, Any]:
    reply = await api.post(base(project_id), {"name": "box", "imagename": TEST_IMAGE, **body})
    assert reply.status == 201, reply
    return reply.json


async def vpcs_ping(console: Console, address: str, count: int = 3) -> int:
    """How many of `count` pings from the VPCS got an answer."""
    await console.send(f"ping {address} -c {count}")
    replies = 0
    for _ in range(count):
        found = await console.expect(rf"{re.escape(address)} icmp_seq=\d+ (ttl=\d+|timeout)", timeout=15)
        replies += found.group(1).startswith("ttl")
    await console.expect(r"PC-A> ")
    return replies


async def test_container_pings_vpcs_pause_resume_console_delete(api, project, gns3_server, tmp_path: Path,
                                                                docker_engine: Dockerd) -> None:
    require("nsenter", "util-linux")
    pid = project["project_id"]
    box_port = free_udp_port()  # an ephemeral port: the low end of the server range is shared with other test runs
    vpcs_port = free_udp_port(avoid={box_port}, also=(9,))
    vpcs = VPCS(tmp_path / "vpcs", free_tcp_port(), vpcs_port, box_port)
    try:
        box = await create_container(api, pid, adapters=1)
        url = f"{base(pid)}/{box['vm_id']}"
        assert len(box["cid"]) == 64 and box["status"] == "stopped" and box["adapters"] == 1
        nio = {"type": "nio_udp", "lport": box_port, "rhost": "127.0.0.1", "rport": vpcs_port}
        reply = await api.post(f"{url}/adapters/0/ports/0/nio", nio)
        assert reply.status == 201 and reply.json == nio
        assert (await api.post(f"{url}/start")).status == 204
        assert (await api.get(url)).json["status"] == "started"

        console = await Console.connect(box["console"])
        try:
            # the console answers a command, and the adapter is eth0 in the container
            out = await console.run("ip addr add 10.0.0.2/24 dev eth0 && ip -o link show eth0 && echo ok-$((40+2))")
            assert "ok-42" in out and "eth0" in out
            out = await console.run("ping -c 3 -W 2 10.0.0.1")
            received = int(re.search(r"(\d+) packets received", out).group(1))
            assert received >= 2, out
        finally:
            await console.close()

        pc = await Console.connect(vpcs.console)
        try:
            await pc.expect(r"PC1 : 10\.0\.0\.1[\s\S]*PC-A> ")  # the startup script ran
            assert await vpcs_ping(pc, "10.0.0.2") >= 2

            assert (await api.post(f"{url}/suspend")).status == 204
            assert (await api.get(url)).json["status"] == "suspended"
            assert await vpcs_ping(pc, "10.0.0.2", 2) == 0

            assert (await api.post(f"{url}/resume")).status == 204
            assert (await api.get(url)).json["status"] == "started"
            assert await vpcs_ping(pc, "10.0.0.2") >= 2

            # the link can go and come back while the container runs; eth0 keeps its address
            assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
            assert await vpcs_ping(pc, "10.0.0.2", 2) == 0
            assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
            assert await vpcs_ping(pc, "10.0.0.2") >= 2
        finally:
            await pc.close()

        assert host_veths(f"g3d{box['vm_id'].replace('-', '')[:8]}")
        assert (await api.delete(url)).status == 204
        assert (await api.get(url)).status == 404
        assert not [c for c in docker_engine.containers() if c["Id"] == box["cid"]]
        assert not host_veths(f"g3d{box['vm_id'].replace('-', '')[:8]}")
        assert not any(name.startswith(f"docker-{box['vm_id']}") for name in gns3_server.dataplane.bridges)
    finally:
        vpcs.stop()


async def test_container_exiting_on_its_own_is_reported(api, project) -> None:
    pid = project["project_id"]
    box = await create_container(api, pid, startcmd="sh -c 'echo bye-from-box; sleep 1; exit 3'")
    async with api.client.get(f"/v1/projects/{pid}/notifications") as stream:
        assert (await api.post(f"{base(pid)}/{box['vm_id']}/start")).status == 204
        seen = await read_notifications(stream, {"vm.started", "log.error", "vm.stopped"})
    assert "return code: 3" in seen["log.error"]["message"]
    assert "bye-from-box" in seen["log.error"]["message"]
    assert seen["vm.stopped"]["status"] == "stopped"
    assert (await api.get(f"{base(pid)}/{box['vm_id']}")).json["status"] == "stopped"
    # it can be started again afterwards
    assert (await api.post(f"{base(pid)}/{box['vm_id']}/start")).status == 204
    assert (await api.post(f"{base(pid)}/{box['vm_id']}/stop")).status == 204


async def test_reload_rewires_and_stop_start(api, project, gns3_server) -> None:
    require("nsenter", "util-linux")
    pid = project["project_id"]
    box = await create_container(api, pid, adapters=2)
    url = f"{base(pid)}/{box['vm_id']}"
    assert (await api.post(f"{url}/start")).status == 204
    console = await Console.connect(box["console"])
    try:
        out = await console.run("ip -o link")
        assert "eth0" in out and "eth1" in out
        first_pid = gns3_server.emulators["docker"].get_vm(box["vm_id"]).pid
        assert (await api.post(f"{url}/reload")).status == 204
        assert gns3_server.emulators["docker"].get_vm(box["vm_id"]).pid not in (None, first_pid)
        # the console client stays connected and is attached again to the restarted container
        out = await console.run("ip -o link")
        assert "eth0" in out and "eth1" in out
        # adapters can be added while it runs
        reply = await api.put(url, {"adapters": 3})
        assert reply.status == 200 and reply.json["adapters"] == 3
        assert "eth2" in await console.run("ip -o link")
        # the console client survives a stop and is attached again at the next start
        assert (await api.post(f"{url}/stop")).status == 204
        assert (await api.get(url)).json["status"] == "stopped"
        assert (await api.post(f"{url}/stop")).status == 204  # stopping a stopped container is fine
        assert (await api.post(f"{url}/start")).status == 204
        assert "eth2" in await console.run("ip -o link")
    finally:
        await console.close()
    assert (await api.post(f"{url}/stop")).status == 204
    reply = await api.post(f"{url}/suspend")
    assert reply.status == 409 and "not running" in reply.json["message"]


async def test_project_close_removes_containers(api, docker_engine: Dockerd) -> None:
    pid = (await api.post("/v1/projects", {"name": "closing"})).json["project_id"]
    running = await create_container(api, pid, adapters=1)
    idle = await create_container(api, pid, name="idle")
    assert (await api.post(f"{base(pid)}/{running['vm_id']}/start")).status == 204
    ids = {c["Id"] for c in docker_engine.containers()}
    assert {running["cid"], idle["cid"]} <= ids
    assert (await api.post(f"/v1/projects/{pid}/close")).status == 204
    ids = {c["Id"] for c in docker_engine.containers()}
    assert not {running["cid"], idle["cid"]} & ids
    assert not host_veths(f"g3d{running['vm_id'].replace('-', '')[:8]}")


async def test_image_list_has_both_keys(api) -> None:
    reply = await api.get("/v1/docker/images")
    assert reply.status == 200
    assert {"image": TEST_IMAGE, "imagename": TEST_IMAGE} in reply.json  # 1.5.4 reads `image`, the seed `imagename`
    assert [item["image"] for item in reply.json] == sorted(item["image"] for item in reply.json)


async def test_changing_the_start_command_recreates_the_container(api, project, docker_engine: Dockerd) -> None:
    pid = project["project_id"]
    box = await create_container(api, pid)
    url = f"{base(pid)}/{box['vm_id']}"
    reply = await api.put(url, {"startcmd": "sleep 300"})
    assert reply.status == 200 and reply.json["startcmd"] == "sleep 300" and reply.json["cid"] != box["cid"]
    ids = {c["Id"] for c in docker_engine.containers()}
    assert reply.json["cid"] in ids and box["cid"] not in ids
    assert (await api.post(f"{url}/start")).status == 204
    # A running container is recreated and started again, as the released 1.5.x server does (the seed-era server
    # answered 409 here; both route families now share the released behaviour).
    reply = await api.put(url, {"startcmd": "sleep 100"})
    assert reply.status == 200 and reply.json["status"] == "started" and reply.json["cid"] not in ids
    ids = {c["Id"] for c in docker_engine.containers()}
    assert reply.json["cid"] in ids
    # a new console port is listened on at once
    wanted = next(p for p in range(box["console"] + 50, 7000) if tcp_port_is_free(p, "127.0.0.1"))
    reply = await api.put(url, {"console": wanted})
    assert reply.status == 200 and reply.json["console"] == wanted
    console = await Console.connect(reply.json["console"], timeout=2)
    try:  # PID 1 is `sleep`, not a shell: what is typed is only echoed by the TTY
        await console.send("typed-into-the-tty")
        await console.expect("typed-into-the-tty")
    finally:
        await console.close()


def test_list_plugins_shows_the_engine(docker_engine: Dockerd) -> None:
    proc = subprocess.run(["gns3server", "--list-plugins"], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DOCKER_HOST": docker_engine.docker_host})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("docker (gns3-docker")), None)
    if line is None:
        pytest.skip("the gns3-docker distribution is not installed (pip install -e plugins/gns3-docker)")
    assert "Docker Engine answers" in line and "API 1." in line, proc.stdout
