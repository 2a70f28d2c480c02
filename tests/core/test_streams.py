"""The two long-lived streams: `GET /v1/files/stream` (tail -f) and a project's notification stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from core_helpers import tree_snapshot

from gns3core.builtin import notifications as notifications_route
from gns3core.testing import is_ping

# -- /v1/files/stream -------------------------------------------------------------------------------------------------


async def test_stream_follows_a_growing_file(api, project, gns3_server) -> None:
    path = Path(project["path"]) / "project-files" / "captures" / "link.pcap"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"HEAD")
    async with api.client.get("/v1/files/stream", json={"location": str(path)}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-Route"] == "/v1/files/stream"
        assert await asyncio.wait_for(response.content.readexactly(4), 5) == b"HEAD"
        with open(path, "ab") as handle:  # bytes appended after the client connected
            handle.write(b"-more-bytes")
        assert await asyncio.wait_for(response.content.readexactly(11), 5) == b"-more-bytes"
        with open(path, "ab") as handle:
            handle.write(b"X" * 200_000)
        assert await asyncio.wait_for(response.content.readexactly(200_000), 5) == b"X" * 200_000
    # The client went away: the server notices and the handler ends (the server keeps answering).
    assert (await api.get("/v1/version")).status == 200


async def test_stream_images_directory(api, gns3_config) -> None:
    images = Path(gns3_config.server.get("images_path")) / "QEMU"
    images.mkdir(parents=True)
    (images / "disk.qcow2").write_bytes(b"QFI")
    async with api.client.get("/v1/files/stream", json={"location": str(images / "disk.qcow2")}) as response:
        assert response.status == 200
        assert await asyncio.wait_for(response.content.readexactly(3), 5) == b"QFI"


async def test_stream_refuses_files_outside_projects_and_images(api, project, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    root = Path(project["path"])
    (root / "out").symlink_to(secret)
    closed = (await api.post("/v1/projects", {"name": "closed"})).json
    (Path(closed["path"]) / "f.txt").write_text("TOP-SECRET")
    await api.post(f"/v1/projects/{closed['project_id']}/close")
    before = tree_snapshot(tmp_path)
    for location in ("/etc/passwd", str(secret), str(root / "out"), str(root / ".." / ".." / "secret.txt"),
                     "secret.txt", str(Path(closed["path"]) / "f.txt")):
        reply = await api.get("/v1/files/stream", {"location": location})
        assert reply.status == 403, location
        assert reply.headers["Content-Type"] == "application/json"
        assert b"TOP-SECRET" not in reply.body
    assert tree_snapshot(tmp_path) == before


async def test_stream_errors(api, project) -> None:
    root = Path(project["path"])
    reply = await api.get("/v1/files/stream", {"location": str(root / "missing.pcap")})
    assert reply.status == 404
    reply = await api.get("/v1/files/stream", {"location": str(root)})
    assert reply.status == 409
    reply = await api.get("/v1/files/stream", {})
    assert reply.status == 400
    assert "'location' is a required property" in reply.json["message"]
    reply = await api.get("/v1/files/stream", {"location": str(root / "x"), "offset": 3})
    assert reply.status == 400
    reply = await api.get("/v1/files/stream")
    assert reply.status == 400


# -- notifications ----------------------------------------------------------------------------------------------------

class Stream:
    """A client of a project's notification stream that reads one JSON line at a time."""

    def __init__(self, response) -> None:
        self.response = response

    async def next(self, timeout: float = 5.0) -> dict:
        line = await asyncio.wait_for(self.response.content.readline(), timeout)
        assert line.endswith(b"\n"), line
        return json.loads(line)

    async def next_event(self, timeout: float = 5.0) -> dict:
        """The next line that is not a keep-alive ping."""
        while True:
            message = await self.next(timeout)
            if message["action"] != "ping":
                return message


async def open_stream(api, project_id: str) -> tuple[object, Stream]:
    response = await api.client.get(f"/v1/projects/{project_id}/notifications", json={})
    return response, Stream(response)


async def test_notification_stream_headers_and_first_ping(api, project) -> None:
    response, stream = await open_stream(api, project["project_id"])
    async with response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Route"] == "/v1/projects/{project_id}/notifications"
        assert "Access-Control-Allow-Origin" not in response.headers
        line = await asyncio.wait_for(response.content.readline(), 5)
        # Released 1.5.x adds the host load to every ping; the seed sent {"action": "ping"} alone. The release wins
        # (api-1.5-release §15 #3): compact JSON, keys sorted, one line.
        ping = json.loads(line)
        assert is_ping(ping), line
        assert line == (json.dumps(ping, sort_keys=True) + "\n").encode()
        assert line.startswith(b'{"action": "ping", "event": {"cpu_usage_percent": ')


async def test_vm_events_from_start_and_stop(api, project) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    vm = (await api.post(base, {"name": "events"})).json
    response, stream = await open_stream(api, pid)
    async with response:
        assert is_ping(await stream.next())
        assert (await api.post(f"{base}/{vm['vm_id']}/start", {})).status == 204
        started = await stream.next_event()
        assert started == {"action": "vm.started", "event": (await api.get(f"{base}/{vm['vm_id']}")).json}
        assert started["event"]["status"] == "started"
        assert (await api.post(f"{base}/{vm['vm_id']}/stop")).status == 204
        stopped = await stream.next_event()
        assert stopped["action"] == "vm.stopped"
        assert stopped["event"]["vm_id"] == vm["vm_id"] and stopped["event"]["status"] == "stopped"


async def test_process_killed_from_outside(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    vm = (await api.post(base, {"name": "victim"})).json
    await api.post(f"{base}/{vm['vm_id']}/start")
    process = gns3_server.emulators["example"].vms[vm["vm_id"]].process
    for _ in range(50):  # the sleeper prints once it runs
        if "example VM running" in process.last_output():
            break
        await asyncio.sleep(0.1)
    response, stream = await open_stream(api, pid)
    async with response:
        await stream.next()
        os.kill(process.pid, signal.SIGKILL)
        error = await stream.next_event()
        assert error["action"] == "log.error"
        assert error["event"]["message"].startswith("Example process has stopped, return code: -9\n")
        assert "example VM running" in error["event"]["message"]
        stopped = await stream.next_event()
        assert stopped["action"] == "vm.stopped"
        assert stopped["event"]["vm_id"] == vm["vm_id"]
    # The project survives and the VM can start again.
    assert (await api.get(f"{base}/{vm['vm_id']}")).json["status"] == "stopped"
    assert (await api.post(f"{base}/{vm['vm_id']}/start")).status == 204
    assert (await api.post(f"{base}/{vm['vm_id']}/stop")).status == 204


async def test_keepalive_ping_after_five_silent_seconds(api, project) -> None:
    assert notifications_route.PING_INTERVAL == 5.0
    response, stream = await open_stream(api, project["project_id"])
    async with response:
        await stream.next()
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # nothing during the silence...
            await asyncio.wait_for(response.content.readline(), 4.0)
        assert is_ping(await stream.next(timeout=3.0))  # ...then the keep-alive
        assert time.monotonic() - started >= 4.0


async def test_keepalive_ping_follows_the_last_event(api, project, gns3_server, monkeypatch) -> None:
    monkeypatch.setattr(notifications_route, "PING_INTERVAL", 0.3)
    pid = project["project_id"]
    response, stream = await open_stream(api, pid)
    async with response:
        await stream.next()
        gns3_server.projects.get(pid).emit("log.warning", {"message": "hello"})
        assert await stream.next() == {"action": "log.warning", "event": {"message": "hello"}}
        assert is_ping(await stream.next(timeout=2))
        assert is_ping(await stream.next(timeout=2))


async def test_many_listeners(api, project, gns3_server) -> None:
    pid = project["project_id"]
    opened = [await open_stream(api, pid) for _ in range(25)]
    try:
        for _, stream in opened:
            assert is_ping(await stream.next())
        assert len(gns3_server.projects.get(pid).notifications.listeners) == 25
        for i in range(3):
            gns3_server.projects.get(pid).emit("log.warning", {"message": f"m{i}"})
        for _, stream in opened:
            assert [(await stream.next_event())["event"]["message"] for _ in range(3)] == ["m0", "m1", "m2"]
    finally:
        for response, _ in opened:
            response.close()


async def test_stuck_listener_does_not_block_others(api, project, gns3_server) -> None:
    pid = project["project_id"]
    hub = gns3_server.projects.get(pid).notifications
    # A client that sends its request and then never reads, with a tiny receive buffer.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stuck, ("127.0.0.1", api.client.server.port))
    stuck.send(f"GET /v1/projects/{pid}/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response, healthy = await open_stream(api, pid)
    try:
        await healthy.next()
        for _ in range(50):
            if len(hub.listeners) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(hub.listeners) == 2
        listeners = list(hub.listeners)
        payload = "x" * 8000
        count = 3000  # ~24 MB: far more than the socket buffers and the 1000-event queue hold
        received = 0
        for i in range(count):
            hub.emit("log.warning", {"message": payload, "n": i})
            assert all(lst.queue.qsize() <= hub.queue_size for lst in listeners)
            if i % 100 == 99:
                while received <= i - 50:
                    message = await healthy.next_event()
                    assert message["event"]["n"] == received
                    received += 1
        while received < count:
            assert (await healthy.next_event())["event"]["n"] == received
            received += 1
        assert [lst.overflowed for lst in listeners].count(True) == 1
        stuck_listener = next(lst for lst in listeners if lst.overflowed)
        assert stuck_listener not in hub.listeners  # a cut-off client no longer counts as listening
        assert len(hub.listeners) == 1
        assert (await api.get("/v1/version")).status == 200
    finally:
        response.close()
        stuck.close()


async def test_close_skipped_while_two_clients_listen(api, project, gns3_server) -> None:
    pid = project["project_id"]
    first, first_stream = await open_stream(api, pid)
    second, second_stream = await open_stream(api, pid)
    try:
        await first_stream.next()
        await second_stream.next()
        reply = await api.post(f"/v1/projects/{pid}/close")
        assert reply.status == 204
        assert (await api.get(f"/v1/projects/{pid}")).status == 200  # skipped
        second.close()
        for _ in range(50):
            if len(gns3_server.projects.get(pid).notifications.listeners) == 1:
                break
            await asyncio.sleep(0.05)
        assert (await api.post(f"/v1/projects/{pid}/close")).status == 204
        assert (await api.get(f"/v1/projects/{pid}")).status == 404
        # The last listener's stream ends with the project.
        assert await asyncio.wait_for(first.content.read(), 5) == b""
    finally:
        first.close()
        second.close()
