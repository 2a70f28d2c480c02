"""The conformance kit: generic tests every emulator plugin runs against itself.

Subclass `EmulatorConformance` in a test module, set the class attributes, and pytest collects the tests:

    class TestMyEmulator(EmulatorConformance):
        emulator = "myemu"
        create_body = {"name": "node"}

Optional sections test more where the plugin can do it for real on the test machine; add their classes to opt in:
`StartStopSection` (start/stop lifecycle and its notifications), `ConsoleSection` (console reachable by telnet),
`LinkChangeSection` (links added and removed while running), `CaptureSection` (a pcap file written).

The fixtures come from the pytest plugin `gns3core.testing.fixtures` (`gns3_api`, `gns3_project`, `gns3_server`);
opt in with `pytest_plugins = ["gns3core.testing.fixtures"]` in the test suite's top-level conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, ClassVar

import pytest

from gns3core.schemas import unbounded_strings
from gns3core.testing import is_ping
from gns3core.testing.client import ApiClient

ALL_NIO_SAMPLES: dict[str, dict[str, Any]] = {
    "nio_udp": {"type": "nio_udp", "lport": 1, "rhost": "127.0.0.1", "rport": 1},
    "nio_tap": {"type": "nio_tap", "tap_device": "tap-gns3-none"},
    "nio_nat": {"type": "nio_nat"},
    "nio_vmnet": {"type": "nio_vmnet", "vmnet": "vmnet99"},
    "nio_null": {"type": "nio_null"},
    "nio_unix": {"type": "nio_unix", "local_file": "/tmp/gns3-a", "remote_file": "/tmp/gns3-b"},
}


@pytest.mark.asyncio
class EmulatorConformance:
    """Generic create/get/update/delete, 400/404, NIO, lock and notification tests for one emulator kind."""

    emulator: ClassVar[str] = ""
    create_body: ClassVar[dict[str, Any]] = {"name": "conformance"}
    update_body: ClassVar[dict[str, Any]] = {"name": "renamed"}
    collection: ClassVar[str] = "vms"
    id_field: ClassVar[str] = "vm_id"  # the id's key in the JSON object
    id_param: ClassVar[str] = ""  # the id's path parameter, when it differs (Docker: "id")
    segment: ClassVar[str] = ""  # the URL segment, when it differs from the kind's name
    nio_path: ClassVar[str] = "adapters/0/ports/0/nio"  # a port that exists and takes a nio_udp
    has_nio: ClassVar[bool] = True

    # -- helpers -----------------------------------------------------------------------------------------------------

    def base(self, project_id: str) -> str:
        return f"/v1/projects/{project_id}/{self.segment or self.emulator}/{self.collection}"

    def nio_body(self, nio: dict[str, Any]) -> dict[str, Any]:
        """The request body that attaches `nio` (Dynamips devices wrap it as {"nio": ...})."""
        return nio

    async def create(self, api: ApiClient, project_id: str, **changes: Any):
        body = {**self.create_body, **changes}
        return await api.post(self.base(project_id), body)

    async def created(self, api: ApiClient, project_id: str) -> dict[str, Any]:
        reply = await self.create(api, project_id)
        assert reply.status == 201, reply
        return reply.json

    async def listing(self, api: ApiClient, project_id: str):
        return await api.get(f"/v1/projects/{project_id}/files")

    # -- tests -------------------------------------------------------------------------------------------------------

    async def test_create_get_delete(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        vm = await self.created(gns3_api, pid)
        vm_id = vm[self.id_field]
        uuid.UUID(vm_id)
        assert vm["project_id"] == pid
        assert vm["name"] == self.create_body["name"]
        reply = await gns3_api.get(f"{self.base(pid)}/{vm_id}")
        assert reply.status == 200
        assert reply.json == vm
        assert reply.headers["Content-Type"] == "application/json"
        assert reply.headers["X-Route"].endswith("{" + (self.id_param or self.id_field) + "}")
        reply = await gns3_api.delete(f"{self.base(pid)}/{vm_id}")
        assert reply.status == 204
        reply = await gns3_api.get(f"{self.base(pid)}/{vm_id}")
        assert reply.status == 404
        assert reply.json["status"] == 404 and vm_id in reply.json["message"]

    async def test_create_with_known_id_returns_it(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        vm = await self.created(gns3_api, pid)
        again = await self.create(gns3_api, pid, **{self.id_field: vm[self.id_field]})
        assert again.status == 201
        assert again.json[self.id_field] == vm[self.id_field]

    async def test_create_in_unknown_project(self, gns3_api: ApiClient) -> None:
        reply = await self.create(gns3_api, str(uuid.uuid4()))
        assert reply.status == 404
        assert "doesn't exist" in reply.json["message"]

    async def test_bad_uuid(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        reply = await gns3_api.get(f"{self.base(gns3_project['project_id'])}/not-a-uuid")
        assert reply.status == 400
        assert "is not a valid UUID" in reply.json["message"]
        reply = await gns3_api.get(self.base("not-a-uuid") + f"/{uuid.uuid4()}")
        assert reply.status == 400

    async def test_unknown_vm(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        reply = await gns3_api.get(f"{self.base(gns3_project['project_id'])}/{uuid.uuid4()}")
        assert reply.status == 404

    async def test_vm_of_another_project(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        vm = await self.created(gns3_api, gns3_project["project_id"])
        other = await gns3_api.post("/v1/projects", {"name": "other"})
        reply = await gns3_api.get(f"{self.base(other.json['project_id'])}/{vm[self.id_field]}")
        assert reply.status == 404
        assert "doesn't belong to" in reply.json["message"]

    async def test_unknown_field_changes_nothing(self, gns3_api: ApiClient, gns3_project: dict[str, Any],
                                                 gns3_server) -> None:
        pid = gns3_project["project_id"]
        before_files = (await self.listing(gns3_api, pid)).json
        before_vms = len(gns3_server.emulators[self.emulator].vms)
        reply = await self.create(gns3_api, pid, unknown_field_xyz=1)
        assert reply.status == 400
        assert reply.json["message"].startswith("Invalid JSON")
        assert reply.json["path"].endswith(f"/{self.collection}")
        assert reply.json["request"]["unknown_field_xyz"] == 1
        assert len(gns3_server.emulators[self.emulator].vms) == before_vms
        assert (await self.listing(gns3_api, pid)).json == before_files

    async def test_request_strings_have_max_length(self, gns3_server) -> None:
        """Every string a request of this kind may carry has a length limit (use `gns3core.schemas.string`)."""
        routes = gns3_server.registry.emulators[self.emulator].routes
        unbounded = {f"{r.method} {r.path}": where for r in routes if r.input is not None
                     for where in [unbounded_strings(r.input)] if where}
        assert not unbounded, f"string fields without maxLength: {unbounded}"

    async def test_short_schema_error_messages(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        reply = await self.create(gns3_api, pid, name="x" * 100_000)
        assert reply.status == 400
        assert reply.json["message"].startswith("Invalid JSON: name is too long")
        assert len(reply.body) < 2000  # the value is not echoed in full, neither in the message nor the request

    async def test_wrong_type_and_malformed_json(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        reply = await self.create(gns3_api, pid, name=12)
        assert reply.status == 400 and reply.json["message"].startswith("Invalid JSON")
        reply = await gns3_api.post(self.base(pid), raw=b'{"name": ')
        assert reply.status == 400
        assert reply.json["message"].startswith("Invalid JSON")
        assert reply.json["request"] == {"malformed_json": '{"name": '}

    async def test_update(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        vm = await self.created(gns3_api, pid)
        reply = await gns3_api.put(f"{self.base(pid)}/{vm[self.id_field]}", self.update_body)
        assert reply.status == 200, reply
        for key, value in self.update_body.items():
            assert reply.json[key] == value
        reply = await gns3_api.get(f"{self.base(pid)}/{vm[self.id_field]}")
        for key, value in self.update_body.items():
            assert reply.json[key] == value
        reply = await gns3_api.put(f"{self.base(pid)}/{vm[self.id_field]}", {"unknown_field_xyz": 1})
        assert reply.status == 400

    async def test_nio_add_remove(self, gns3_api: ApiClient, gns3_project: dict[str, Any], gns3_server) -> None:
        if not self.has_nio:
            pytest.skip("this kind has no NIO endpoints")
        pid = gns3_project["project_id"]
        vm = await self.created(gns3_api, pid)
        port = (await gns3_api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
        peer = (await gns3_api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
        nio = {"type": "nio_udp", "lport": port, "rhost": "127.0.0.1", "rport": peer}
        url = f"{self.base(pid)}/{vm[self.id_field]}/{self.nio_path}"
        reply = await gns3_api.post(url, self.nio_body(nio))
        assert reply.status == 201, reply
        assert reply.json == nio
        reply = await gns3_api.delete(url)
        assert reply.status == 204
        assert port not in gns3_server.ports.udp_used
        reply = await gns3_api.post(url, self.nio_body({"type": "nio_udp", "lport": port}))
        assert reply.status == 400
        reply = await gns3_api.post(url, self.nio_body({"type": "nio_bogus"}))
        assert reply.status == 400
        supported = gns3_server.emulators[self.emulator].supported_nios
        unsupported = next((t for t in ALL_NIO_SAMPLES if t not in supported), None)
        if unsupported is not None:
            reply = await gns3_api.post(url, self.nio_body(ALL_NIO_SAMPLES[unsupported]))
            assert reply.status == 409
            assert f"NIO of type {unsupported} is not supported" in reply.json["message"]

    async def test_concurrent_requests_on_one_vm(self, gns3_api: ApiClient, gns3_project: dict[str, Any],
                                                 gns3_server) -> None:
        pid = gns3_project["project_id"]
        vm = await self.created(gns3_api, pid)
        url = f"{self.base(pid)}/{vm[self.id_field]}"
        names = [f"n{i}" for i in range(10)]
        replies = await asyncio.gather(*(gns3_api.put(url, {"name": n}) for n in names),
                                       *(gns3_api.get(url) for _ in names))
        assert all(r.status == 200 for r in replies), replies
        assert (await gns3_api.get(url)).json["name"] in names
        assert len(gns3_server.locks) == 0

    async def test_project_close_releases_ports(self, gns3_api: ApiClient, gns3_server) -> None:
        pid = (await gns3_api.post("/v1/projects", {"name": "closing"})).json["project_id"]
        vm = await self.created(gns3_api, pid)
        console = vm.get("console")
        reply = await gns3_api.post(f"/v1/projects/{pid}/close")
        assert reply.status == 204
        if console is not None:
            assert console not in gns3_server.ports.tcp_used
        assert gns3_server.ports.ports_of(pid) == (set(), set())
        assert (await gns3_api.get(f"{self.base(pid)}/{vm[self.id_field]}")).status == 404

    async def test_notification_stream_pings(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        async with gns3_api.client.get(f"/v1/projects/{gns3_project['project_id']}/notifications") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            line = await asyncio.wait_for(response.content.readline(), 5)
            # The first line is a ping with the host load, as released 1.5.x sends it (§15 #3: the release wins
            # over the seed's bare {"action": "ping"}).
            assert is_ping(json.loads(line)), line


# -- optional sections -------------------------------------------------------------------------------------------------
#
# A plugin opts into a section by adding its class next to EmulatorConformance:
#
#     class TestMyEmulator(EmulatorConformance, StartStopSection, ConsoleSection):
#         emulator = "myemu"
#
# Each section needs what it names to work for real on the machine running the tests (a started emulator, a console
# that answers, ...); a plugin opts in only where that holds.

LIVENESS = 60.0  # seconds: a generous bound for things that happen at once on an idle machine


def _port_in_use(port: int) -> bool:
    """Whether some socket of this machine holds UDP `port` (the emulator or the data plane did bind it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


async def _eventually(check: Any, what: str, timeout: float = LIVENESS) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        await asyncio.sleep(0.05)


class _Section:
    """Helpers the optional sections share; they rely on EmulatorConformance's attributes and helpers."""

    always_running: ClassVar[bool] = False  # a kind without start/stop (switches and hubs run from creation)

    @pytest.fixture(autouse=True)
    def _section_server(self, gns3_server) -> None:
        self.server = gns3_server

    def item(self, project_id: str, vm: dict[str, Any]) -> str:
        return f"{self.base(project_id)}/{vm[self.id_field]}"  # type: ignore[attr-defined]

    async def udp_nio(self, api: ApiClient, project_id: str) -> dict[str, Any]:
        """A nio_udp on a tunnel port the server handed out, pointing at another one."""
        port = (await api.post(f"/v1/projects/{project_id}/ports/udp")).json["udp_port"]
        peer = (await api.post(f"/v1/projects/{project_id}/ports/udp")).json["udp_port"]
        return {"type": "nio_udp", "lport": port, "rhost": "127.0.0.1", "rport": peer}

    async def prepare_start(self, api: ApiClient, project_id: str, vm: dict[str, Any]) -> None:
        """What a VM needs before it can start; by default a nio_udp on `nio_path` (VPCS needs a link)."""
        if self.has_nio:  # type: ignore[attr-defined]
            url = f"{self.item(project_id, vm)}/{self.nio_path}"  # type: ignore[attr-defined]
            reply = await api.post(url, self.nio_body(await self.udp_nio(api, project_id)))  # type: ignore
            assert reply.status == 201, reply

    async def started(self, api: ApiClient, project_id: str) -> dict[str, Any]:
        """A created VM, prepared and started (for always-running kinds, just created)."""
        vm = await self.created(api, project_id)  # type: ignore[attr-defined]
        if not self.always_running:
            await self.prepare_start(api, project_id, vm)
            reply = await api.post(f"{self.item(project_id, vm)}/start")
            assert reply.status in (200, 204), reply
        return vm

    async def status(self, api: ApiClient, project_id: str, vm: dict[str, Any]) -> str:
        """The VM's status as its object says, or as the server knows it (some kinds' objects have none)."""
        reply = await api.get(self.item(project_id, vm))
        assert reply.status == 200, reply
        if "status" in reply.json:
            return reply.json["status"]
        return self.server.emulators[self.emulator].vms[vm[self.id_field]].status  # type: ignore[attr-defined]


@pytest.mark.asyncio
class StartStopSection(_Section):
    """Start and stop for real: status and notifications follow, stop and start repeat, delete stops a running VM."""

    async def test_start_stop_lifecycle(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        vm = await self.started(gns3_api, pid)
        item = self.item(pid, vm)
        assert await self.status(gns3_api, pid, vm) == "started"
        again = await gns3_api.post(f"{item}/start")  # starting a started VM changes nothing
        assert again.status in (200, 204), again
        assert (await gns3_api.post(f"{item}/stop")).status == 204
        assert await self.status(gns3_api, pid, vm) == "stopped"
        assert (await gns3_api.post(f"{item}/stop")).status == 204  # stopping a stopped VM is fine too
        assert (await gns3_api.post(f"{item}/start")).status in (200, 204)
        assert await self.status(gns3_api, pid, vm) == "started"
        assert (await gns3_api.post(f"{item}/stop")).status == 204

    async def test_start_and_stop_are_notified(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        pid = gns3_project["project_id"]
        async with gns3_api.client.get(f"/v1/projects/{pid}/notifications") as stream:
            vm = await self.started(gns3_api, pid)
            assert (await gns3_api.post(f"{self.item(pid, vm)}/stop")).status == 204
            seen: list[tuple[str, str | None]] = []
            while ("vm.stopped", vm[self.id_field]) not in seen:  # type: ignore[attr-defined]
                line = await asyncio.wait_for(stream.content.readline(), LIVENESS)
                assert line, f"the stream ended; seen {seen}"
                event = json.loads(line)
                seen.append((event.get("action"), (event.get("event") or {}).get(self.id_field)))  # type: ignore
            assert ("vm.started", vm[self.id_field]) in seen  # type: ignore[attr-defined]

    async def test_delete_while_running(self, gns3_api: ApiClient, gns3_project: dict[str, Any],
                                        gns3_server) -> None:
        pid = gns3_project["project_id"]
        vm = await self.started(gns3_api, pid)
        assert (await gns3_api.delete(self.item(pid, vm))).status == 204
        assert (await gns3_api.get(self.item(pid, vm))).status == 404
        assert vm[self.id_field] not in gns3_server.emulators[self.emulator].vms  # type: ignore[attr-defined]
        if vm.get("console") is not None:
            assert vm["console"] not in gns3_server.ports.tcp_used


@pytest.mark.asyncio
class ConsoleSection(_Section):
    """The console of a started VM accepts a telnet connection and answers a newline (with `console_expect`)."""

    console_expect: ClassVar[bytes | None] = None  # text the console shows after a newline; None: any output

    async def test_console_reachable_by_telnet(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        from gns3core.testing.telnet import strip_telnet

        pid = gns3_project["project_id"]
        vm = await self.started(gns3_api, pid)
        port = (await gns3_api.get(self.item(pid, vm))).json["console"]
        assert isinstance(port, int), "a started VM has a console port"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LIVENESS
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                assert loop.time() < deadline, f"nothing accepts connections on console port {port}"
                await asyncio.sleep(0.1)
        received = b""
        try:
            while loop.time() < deadline:
                writer.write(b"\r\n")
                await writer.drain()
                nudge = loop.time() + 3.0  # a newline every few seconds until the console answers
                while loop.time() < min(nudge, deadline):
                    try:
                        chunk = await asyncio.wait_for(reader.read(4096), 0.5)
                    except TimeoutError:
                        continue
                    assert chunk, f"the console closed the connection; it had sent {received[-500:]!r}"
                    received += chunk
                    if self._answered(strip_telnet(received)):
                        return
            raise AssertionError(f"the console never answered {self.console_expect!r}: {received[-500:]!r}")
        finally:
            writer.close()
            await gns3_api.post(f"{self.item(pid, vm)}/stop")

    def _answered(self, text: bytes) -> bool:
        if self.console_expect is None:
            return bool(text.strip())
        return self.console_expect in text


@pytest.mark.asyncio
class LinkChangeSection(_Section):
    """Links added and removed while the VM runs take effect at once: an added link's tunnel port is bound, a
    removed one's is let go, a port re-linked to another tunnel uses the new one, and the VM keeps running."""

    async def test_link_change_while_running(self, gns3_api: ApiClient, gns3_project: dict[str, Any],
                                             gns3_server) -> None:
        pid = gns3_project["project_id"]
        self_: Any = self
        vm = await self.started(gns3_api, pid)
        url = f"{self.item(pid, vm)}/{self_.nio_path}"
        await gns3_api.delete(url)  # whatever prepare_start attached: start from an unlinked port
        first = await self.udp_nio(gns3_api, pid)
        reply = await gns3_api.post(url, self_.nio_body(first))
        assert reply.status == 201, reply
        await _eventually(lambda: _port_in_use(first["lport"]), f"tunnel port {first['lport']} bound")
        reply = await gns3_api.delete(url)
        assert reply.status == 204, reply
        await _eventually(lambda: not _port_in_use(first["lport"]), f"tunnel port {first['lport']} let go")
        assert first["lport"] not in gns3_server.ports.udp_used
        second = await self.udp_nio(gns3_api, pid)  # the client re-links the port to another node
        reply = await gns3_api.post(url, self_.nio_body(second))
        assert reply.status == 201, reply
        await _eventually(lambda: _port_in_use(second["lport"]), f"new tunnel port {second['lport']} bound")
        assert (await gns3_api.delete(url)).status == 204
        await _eventually(lambda: not _port_in_use(second["lport"]), f"tunnel port {second['lport']} let go")
        if not self.always_running:
            assert await self.status(gns3_api, pid, vm) == "started"
            await gns3_api.post(f"{self.item(pid, vm)}/stop")


@pytest.mark.asyncio
class CaptureSection(_Section):
    """start_capture writes a pcap file in the project's captures, with the frames that cross the port."""

    capture_records_frames: ClassVar[bool] = True  # frames sent into the tunnel appear in the file

    async def test_capture_file_written(self, gns3_api: ApiClient, gns3_project: dict[str, Any]) -> None:
        import socket
        import struct
        from pathlib import Path

        pid = gns3_project["project_id"]
        self_: Any = self
        vm = await self.started(gns3_api, pid)
        port_url = f"{self.item(pid, vm)}/{self_.nio_path.rsplit('/', 1)[0]}"
        nio = await self.udp_nio(gns3_api, pid)
        assert (await gns3_api.post(f"{port_url}/nio", self_.nio_body(nio))).status == 201
        reply = await gns3_api.post(f"{port_url}/start_capture",
                                    {"capture_file_name": "conformance.pcap", "data_link_type": "DLT_EN10MB"})
        assert reply.status == 200, reply
        path = Path(reply.json["pcap_file_path"])
        assert path.name == "conformance.pcap"

        def frames() -> int:
            try:
                data = path.read_bytes()
            except OSError:
                return -1
            if len(data) < 24:
                return -1
            assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), f"not a pcap file: {data[:4]!r}"
            count, offset = 0, 24
            endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
            while offset + 16 <= len(data):
                offset += 16 + struct.unpack_from(endian + "I", data, offset + 8)[0]
                count += 1
            return count

        if self.capture_records_frames:
            # Broadcast frames arriving from the far end of the tunnel cross the captured port. Some writers (the
            # real dynamips) buffer the file until the capture stops: send for a few seconds, then stop and look.
            frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"conformance".ljust(46, b"\x00")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
                far_end.bind(("127.0.0.1", nio["rport"]))
                loop = asyncio.get_running_loop()
                until = loop.time() + 5.0
                while frames() < 1 and loop.time() < until:
                    far_end.sendto(frame, ("127.0.0.1", nio["lport"]))
                    await asyncio.sleep(0.2)
        assert (await gns3_api.post(f"{port_url}/stop_capture")).status == 204
        await _eventually(lambda: frames() >= 0, f"a pcap header in {path}")
        if self.capture_records_frames:
            await _eventually(lambda: frames() >= 1, f"a frame recorded in {path}")
