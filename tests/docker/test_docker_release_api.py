"""The released 1.5.x Docker API (`/docker/vms`, api-1.5-release §8) on a real engine, beside the seed's routes.

The main scenario is what a 1.5.4 client does: create a container with its body, link it to a real VPCS, start it,
capture the link, ping across it, reach the telnet and aux consoles, see it through the seed's routes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from docker_helpers import VPCS, Console, free_udp_port, host_veths, read_notifications, require
from dockerd import TEST_IMAGE, Dockerd

from gns3core.ports import tcp_port_is_free
from gns3core.testing import require as require_in_ci
from gns3core.testing.ports import free_tcp_port

pytestmark = pytest.mark.timeout(240)

REPOSITORY = TEST_IMAGE.rsplit(":", 1)[0]  # without a tag: the server adds ":latest"


def vms(project_id: str) -> str:
    return f"/v1/projects/{project_id}/docker/vms"


def images(project_id: str) -> str:
    return f"/v1/projects/{project_id}/docker/images"


def release_body(**changes: Any) -> dict[str, Any]:
    """What the 1.5.4 client sends for a new Docker node from a template."""
    return {"name": "box", "image": REPOSITORY, "adapters": 1, "start_command": None,
            "environment": "GREETING=hello-from-env\n  OTHER=2  \n", "console_type": "telnet",
            "console_resolution": "1024x768", "console_http_port": 80, "console_http_path": "/", **changes}


async def created(api, project_id: str, **changes: Any) -> dict[str, Any]:
    reply = await api.post(vms(project_id), release_body(**changes))
    assert reply.status == 201, reply
    return reply.json


def check_pcap(path: Path, want_icmp: int) -> None:
    """The capture is a pcap (magic, Ethernet) holding frames, ICMP among them (checked by capinfos and tshark)."""
    capinfos = require("capinfos", "tshark")
    tshark = require("tshark", "tshark")
    assert path.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), "not a pcap file"
    info = subprocess.run([capinfos, "-t", "-c", "-E", str(path)], capture_output=True, text=True, check=True).stdout
    assert "pcap" in info and "Ethernet" in info, info
    frames = int(re.search(r"Number of packets:\s+(\d+)", info).group(1))
    icmp = subprocess.run([tshark, "-r", str(path), "-Y", "icmp"], capture_output=True, text=True, check=True).stdout
    assert frames >= want_icmp and len(icmp.splitlines()) >= want_icmp, (info, icmp)


async def test_release_client_session(api, project, gns3_server, tmp_path: Path, docker_engine: Dockerd) -> None:
    """Create with a 1.5.4 body, link to a real VPCS, capture, ping, consoles, events, and the seed's view."""
    require("nsenter", "util-linux")
    pid = project["project_id"]
    box_port = free_udp_port()  # an ephemeral port: the low end of the server range is shared with other test runs
    vpcs_port = free_udp_port(avoid={box_port}, also=(9,))
    vpcs = VPCS(tmp_path / "vpcs", free_tcp_port(), vpcs_port, box_port)
    try:
        box = await created(api, pid)
        url = f"{vms(pid)}/{box['vm_id']}"
        assert box["image"] == f"{REPOSITORY}:latest"
        assert re.fullmatch("[0-9a-f]{64}", box["container_id"]) and box["cid"] == box["container_id"]
        assert box["adapters"] == 1 and box["console_type"] == "telnet" and box["status"] == "stopped"
        assert isinstance(box["console"], int) and isinstance(box["aux"], int) and box["aux"] != box["console"]
        assert box["vm_directory"].endswith(f"project-files/docker/{box['vm_id']}")
        assert box["environment"] == release_body()["environment"] and box["start_command"] is None

        nio = {"type": "nio_udp", "lport": box_port, "rhost": "127.0.0.1", "rport": vpcs_port}
        reply = await api.post(f"{url}/adapters/0/ports/0/nio", nio)
        assert reply.status == 201 and reply.json == nio
        # the 1.5.4 client always sends data_link_type; asked before the start, the capture begins with it
        reply = await api.post(f"{url}/adapters/0/ports/0/start_capture",
                               {"capture_file_name": "box-link.pcap", "data_link_type": "DLT_EN10MB"})
        assert reply.status == 200, reply
        pcap = Path(reply.json["pcap_file_path"])
        assert pcap == Path(project["path"]) / "project-files" / "captures" / "box-link.pcap"

        async with api.client.get(f"/v1/projects/{pid}/notifications") as stream:
            reply = await api.post(f"{url}/start", {})
            assert reply.status == 204, reply
            seen = await read_notifications(stream, {"vm.started"})
        assert seen["vm.started"]["vm_id"] == box["vm_id"] and seen["vm.started"]["status"] == "started"

        console = await Console.connect(box["console"])
        try:
            await console.expect("box console is now available... Press RETURN to get started.")
            out = await console.run("ip addr add 10.0.0.2/24 dev eth0 && echo $GREETING-$OTHER && hostname")
            assert "hello-from-env-2" in out and "box" in out
            out = await console.run("ping -c 3 -W 2 10.0.0.1")
            assert int(re.search(r"(\d+) packets received", out).group(1)) >= 2, out
            # busybox's shell asks the terminal for the cursor position after each prompt: never passed on
            assert b"\x1b[6n" not in console.seen
        finally:
            await console.close()

        pc = await Console.connect(vpcs.console)
        try:
            await pc.expect(r"PC-A> ")
            await pc.send("ping 10.0.0.2 -c 3")
            replies = [await pc.expect(r"10\.0\.0\.2 icmp_seq=\d+ (ttl=\d+|timeout)") for _ in range(3)]
            assert sum(m.group(1).startswith("ttl") for m in replies) >= 2
        finally:
            await pc.close()

        aux = await Console.connect(box["aux"])
        try:
            out = await aux.run("echo aux-$((6*7)) $GREETING; cat /proc/1/cmdline | tr '\\0' ' '")
            assert "aux-42 hello-from-env" in out and "/bin/sh" in out  # a shell beside PID 1, same environment
            await aux.send("exit")  # the client gets a new shell, as with the reference's shell loop
            await aux.expect("built-in shell")
            assert "aux-again" in await aux.run("echo aux-again")
            assert b"\x1b[6n" not in aux.seen
        finally:
            await aux.close()

        assert (await api.post(f"{url}/adapters/0/ports/0/stop_capture", {})).status == 204
        check_pcap(pcap, want_icmp=4)

        # the same container through the seed's routes: same object, same state
        seed_url = f"{images(pid)}/{box['vm_id']}"
        reply = await api.get(seed_url)
        assert reply.status == 200 and reply.json["cid"] == box["cid"] and reply.json["status"] == "started"
        async with api.client.get(f"/v1/projects/{pid}/notifications") as stream:
            assert (await api.post(f"{seed_url}/stop")).status == 204
            seen = await read_notifications(stream, {"vm.stopped"})
        assert seen["vm.stopped"]["vm_id"] == box["vm_id"]
        assert (await api.get(url)).json["status"] == "stopped"
        assert (await api.delete(seed_url)).status == 204
        assert (await api.get(url)).status == 404
        assert not [c for c in docker_engine.containers() if c["Id"] == box["cid"]]
        assert not host_veths(f"g3d{box['vm_id'].replace('-', '')[:8]}")
        assert box["console"] not in gns3_server.ports.tcp_used and box["aux"] not in gns3_server.ports.tcp_used
    finally:
        vpcs.stop()


async def test_reload_of_a_stopped_container_starts_it(api, project) -> None:
    box = await created(api, project["project_id"], adapters=0)
    url = f"{vms(project['project_id'])}/{box['vm_id']}"
    assert (await api.post(f"{url}/reload", {})).status == 204
    assert (await api.get(url)).json["status"] == "started"
    console = await Console.connect(box["console"])
    try:
        assert "alive-42" in await console.run("echo alive-$((6*7))")
    finally:
        await console.close()
    assert (await api.post(f"{url}/stop", {})).status == 204


async def test_put_recreates_the_container_and_keeps_it_running(api, project, docker_engine: Dockerd) -> None:
    pid = project["project_id"]
    box = await created(api, pid)
    url = f"{vms(pid)}/{box['vm_id']}"
    assert (await api.post(f"{url}/start", {})).status == 204
    reply = await api.put(url, {"name": "renamed", "environment": "GREETING=changed", "start_command": "  "})
    assert reply.status == 200, reply
    new = reply.json
    assert new["container_id"] != box["container_id"] and new["status"] == "started"
    assert new["name"] == "renamed" and new["environment"] == "GREETING=changed" and new["start_command"] is None
    assert {new["console"], new["aux"]} == {box["console"], box["aux"]}
    assert box["container_id"] not in {c["Id"] for c in docker_engine.containers()}
    console = await Console.connect(new["console"])
    try:
        out = await console.run("hostname; echo $GREETING")
        assert "renamed" in out and "changed" in out
    finally:
        await console.close()
    # console and http settings change in place: same container
    wanted = next(p for p in range(new["console"] + 50, 7000) if tcp_port_is_free(p, "127.0.0.1"))
    reply = await api.put(url, {"console": wanted, "console_http_path": "/admin", "adapters": 2})
    assert reply.status == 200 and reply.json["console"] == wanted and reply.json["adapters"] == 2
    assert reply.json["container_id"] == new["container_id"] and reply.json["console_http_path"] == "/admin"
    assert (await api.put(url, {"image": "x", "unknown": 1})).status == 400
    # a value that cannot work changes nothing, not even the fields before it
    reply = await api.put(url, {"name": "third", "start_command": "sh -c 'unclosed"})
    assert reply.status == 400 and "cannot be split" in reply.json["message"]
    reply = await api.get(url)
    assert reply.json["name"] == "renamed" and reply.json["container_id"] == new["container_id"]
    assert reply.json["status"] == "started"
    assert (await api.post(f"{url}/stop", {})).status == 204


HTTPD = ("sh -c 'mkdir -p /www && echo served-by-the-container > /www/index.html && "
         "httpd -p 8080 -h /www && exec sh'")


async def test_http_console_relays_to_the_web_server_inside(api, project) -> None:
    box = await created(api, project["project_id"], adapters=0, console_type="http", console_http_port=8080,
                        start_command=HTTPD)
    url = f"{vms(project['project_id'])}/{box['vm_id']}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):  # nothing to relay to while it is stopped
            await session.get(f"http://127.0.0.1:{box['console']}/", timeout=aiohttp.ClientTimeout(total=10))
        assert (await api.post(f"{url}/start", {})).status == 204
        body = ""
        for _ in range(50):  # httpd starts a moment after the container
            try:
                async with session.get(f"http://127.0.0.1:{box['console']}/index.html",
                                       timeout=aiohttp.ClientTimeout(total=10)) as response:
                    body = await response.text()
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        assert "served-by-the-container" in body
        # several at once (at most four relayed together, the rest wait their turn)
        async def fetch() -> str:
            async with session.get(f"http://127.0.0.1:{box['console']}/index.html",
                                   timeout=aiohttp.ClientTimeout(total=30)) as response:
                return await response.text()

        assert all("served-by-the-container" in text for text in await asyncio.gather(*(fetch() for _ in range(6))))
    reply = await api.put(url, {"console_type": "telnet"})
    assert reply.status == 200 and reply.json["console_type"] == "telnet" and reply.json["status"] == "started"
    assert (await api.post(f"{url}/stop", {})).status == 204


async def test_vnc_console(api, project, gns3_server) -> None:
    require_in_ci(shutil.which("Xvfb") is not None and shutil.which("x11vnc") is not None,
                  "Xvfb and x11vnc are not installed (apt-get install -y xvfb x11vnc)")
    box = await created(api, project["project_id"], adapters=0, console_type="vnc", console_resolution="800x600")
    url = f"{vms(project['project_id'])}/{box['vm_id']}"
    assert 5900 <= box["console"] <= 6000
    reader, writer = await asyncio.open_connection("127.0.0.1", box["console"])
    try:
        assert (await asyncio.wait_for(reader.readexactly(12), 10)).startswith(b"RFB 003.")
    finally:
        writer.close()
    assert (await api.post(f"{url}/start", {})).status == 204
    aux = await Console.connect(box["aux"])
    try:
        display = re.search(r"display=(:\d+)", await aux.run("echo display=$DISPLAY")).group(1)
        assert "socket-ok" in await aux.run(f"test -S /tmp/.X11-unix/X{display[1:]} && echo socket-ok")
    finally:
        await aux.close()
    assert Path(f"/tmp/.X11-unix/X{display[1:]}").exists()
    # another VNC port: a new display server there, the container recreated for its socket and running again
    wanted = next(p for p in range(6000, 5900, -1) if p != box["console"] and tcp_port_is_free(p, "127.0.0.1"))
    reply = await api.put(url, {"console": wanted})
    assert reply.status == 200 and reply.json["console"] == wanted and reply.json["status"] == "started"
    assert reply.json["container_id"] != box["container_id"]
    reader, writer = await asyncio.open_connection("127.0.0.1", wanted)
    try:
        assert (await asyncio.wait_for(reader.readexactly(12), 10)).startswith(b"RFB 003.")
    finally:
        writer.close()
    aux = await Console.connect(box["aux"])
    try:
        display = re.search(r"display=(:\d+)", await aux.run("echo display=$DISPLAY")).group(1)
    finally:
        await aux.close()
    assert (await api.delete(url)).status == 204
    for _ in range(50):
        if not Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
            break
        await asyncio.sleep(0.1)
    assert not Path(f"/tmp/.X11-unix/X{display[1:]}").exists(), "Xvfb outlived the container"


async def test_vnc_without_its_programs_is_a_409(api, project, gns3_server, monkeypatch) -> None:
    import gns3_docker.vnc

    monkeypatch.setattr(gns3_docker.vnc.shutil, "which", lambda name: None)
    reply = await api.post(vms(project["project_id"]), release_body(console_type="vnc"))
    assert reply.status == 409
    assert reply.json["message"].startswith("Please install Xvfb and x11vnc before using the VNC support")
    assert not gns3_server.emulators["docker"].vms
    assert gns3_server.ports.ports_of(project["project_id"]) == (set(), set())


async def test_per_route_defaults_and_both_field_names(api, project, docker_engine: Dockerd) -> None:
    pid = project["project_id"]
    seed = await api.post(images(pid), {"name": "seed", "imagename": TEST_IMAGE, "console": "telnet"})
    release = await api.post(vms(pid), {"name": "release", "image": TEST_IMAGE})
    assert seed.status == 201 and release.status == 201
    assert seed.json["adapters"] == 0 and release.json["adapters"] == 1
    assert isinstance(seed.json["console"], int)  # the seed's string console is ignored
    # each family's names on the other's route; the released name wins when both are given
    mixed = await api.post(vms(pid), {"name": "mixed", "imagename": "nothing:here", "image": TEST_IMAGE,
                                      "startcmd": "sleep 1", "start_command": "sleep 2", "adapters": None})
    assert mixed.status == 201 and mixed.json["image"] == TEST_IMAGE and mixed.json["start_command"] == "sleep 2"
    assert mixed.json["adapters"] == 1
    seed_with_release_names = await api.post(images(pid), {"name": "x", "image": TEST_IMAGE, "start_command": "sh"})
    assert seed_with_release_names.status == 201 and seed_with_release_names.json["startcmd"] == "sh"
    for body in ({"name": "no-image"}, {"image": TEST_IMAGE}, {"name": "x", "image": TEST_IMAGE, "adapters": 100},
                 {"name": "x", "image": TEST_IMAGE, "console_type": "rdp"},
                 {"name": "x", "image": TEST_IMAGE, "console_resolution": "big"},
                 {"name": "x", "image": "i" * 600}, {"name": "x", "image": TEST_IMAGE, "start_command": "s" * 9000}):
        reply = await api.post(vms(pid), body)
        assert reply.status == 400, (body, reply)
    reply = await api.post(vms(pid), release_body(start_command="sh -c 'unclosed"))
    assert reply.status == 400 and "cannot be split" in reply.json["message"]
    reply = await api.post(vms(pid), release_body(console_resolution="99999x99999"))
    assert reply.status == 400 and "Console resolution" in reply.json["message"]
    # a known vm_id on create returns that container, on either route
    again = await api.post(images(pid), {"name": "release", "imagename": TEST_IMAGE, "vm_id": release.json["vm_id"]})
    assert again.status == 201 and again.json["cid"] == release.json["cid"]
    ours = [c for c in docker_engine.containers() if c["Labels"].get("org.gns3.project_id") == pid]
    assert len(ours) == 4


async def test_tap_nio_on_a_running_container(api, project) -> None:
    require("nsenter", "util-linux")
    tap = f"g3tap{os.getpid() % 100000}"
    box = await created(api, project["project_id"], adapters=1)
    url = f"{vms(project['project_id'])}/{box['vm_id']}"
    assert (await api.post(f"{url}/start", {})).status == 204
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_tap", "tap_device": tap})
    assert reply.status == 201, reply
    assert tap in host_veths("g3tap")
    assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
    assert tap not in host_veths("g3tap")
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_unix", "local_file": "/tmp/a",
                                                             "remote_file": "/tmp/b"})
    assert reply.status == 409 and "NIO of type nio_unix is not supported" in reply.json["message"]
    reply = await api.post(f"{url}/adapters/3/ports/0/nio", {"type": "nio_tap", "tap_device": tap})
    assert reply.status == 409 and "Adapter 3 doesn't exist on Docker container 'box'" in reply.json["message"]
    assert (await api.post(f"{url}/stop", {})).status == 204


def test_offline_image_script(docker_engine: Dockerd) -> None:
    """scripts/docker-busybox-image.sh imports the documented offline image into the engine DOCKER_HOST names."""
    require("docker", "docker.io")
    script = Path(__file__).resolve().parents[2] / "scripts" / "docker-busybox-image.sh"
    env = {**os.environ, "DOCKER_HOST": docker_engine.docker_host}
    subprocess.run(["bash", str(script), "gns3test/offline:1"], env=env, check=True, capture_output=True, timeout=180)
    status, raw = docker_engine.call("GET", "/images/json")
    assert status == 200 and any("gns3test/offline:1" in (i.get("RepoTags") or []) for i in json.loads(raw))
    run = subprocess.run(["docker", "run", "--rm", "--network", "none", "gns3test/offline:1", "sh", "-c",
                          "echo offline-$((6*7)); ls /bin | wc -l"], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert "offline-42" in run.stdout and int(run.stdout.split()[-1]) > 100  # every applet is linked
