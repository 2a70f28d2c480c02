"""The conformance kit: generic tests every emulator plugin runs against itself.

Subclass `EmulatorConformance` in a test module, set the class attributes, and pytest collects the tests:

    class TestMyEmulator(EmulatorConformance):
        emulator = "myemu"
        create_body = {"name": "node"}

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
            assert json.loads(line) == {"action": "ping"}
