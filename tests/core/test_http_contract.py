"""The HTTP contract every route shares: headers, error shapes, body parsing, what the GNS3 1.5 client sends, auth."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from core_helpers import raw_http, tree_snapshot

from gns3core import hookimpl
from gns3core.routing import Route

sys.path.insert(0, str(Path(__file__).parent.parent / "example_plugin"))
import gns3_example  # noqa: E402


class BoomPlugin:
    """Test routes: one fails with an unexpected exception, one on a VM id records when it runs."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    @staticmethod
    async def boom(request):
        raise RuntimeError("secret internal detail /etc/shadow")

    @staticmethod
    async def aiohttp_error(request):
        raise web.HTTPForbidden(text="not for you")

    async def slow(self, request):
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(0.05)
        self.spans.append((request.match["vm_id"], start, asyncio.get_running_loop().time()))

    @hookimpl
    def gns3_register(self, registry) -> None:
        registry.add_routes([Route("GET", "/v1/test/boom", self.boom, 200),
                             Route("GET", "/v1/test/aiohttp_error", self.aiohttp_error, 200),
                             Route("POST", "/v1/test/vms/{vm_id}/slow", self.slow, 204)])


BOOM = BoomPlugin()


@pytest.fixture
def gns3_plugins():
    return [gns3_example, BOOM]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- headers ----------------------------------------------------------------------------------------------------------

async def test_common_headers_on_success(api) -> None:
    reply = await api.get("/v1/version")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Route"] == "/v1/version"
    assert "Access-Control-Allow-Origin" not in reply.headers  # CORS only for configured origins
    assert "GNS3/1.5.4" in reply.headers["Server"]
    assert reply.body.startswith(b'{\n    "local"')  # indent 4, sorted keys


async def test_common_headers_on_routed_errors(api) -> None:
    reply = await api.get(f"/v1/projects/{uuid.uuid4()}")
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Route"] == "/v1/projects/{project_id}"
    assert "Access-Control-Allow-Origin" not in reply.headers  # CORS only for configured origins
    assert set(reply.json) == {"status", "message"}


async def test_x_route_is_the_template(api, project) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/example/vms", {"name": "x"})
    vm_id = reply.json["vm_id"]
    reply = await api.post(f"/v1/projects/{pid}/example/vms/{vm_id}/adapters/0/ports/0/nio", {"type": "nio_null"})
    assert reply.headers["X-Route"] == ("/v1/projects/{project_id}/example/vms/{vm_id}/adapters/{adapter_number:\\d+}"
                                        "/ports/{port_number:\\d+}/nio")


# -- routing errors ---------------------------------------------------------------------------------------------------

async def test_unknown_route_is_json_404(api) -> None:
    reply = await api.get("/v1/no/such/thing")
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json["status"] == 404
    assert "/v1/no/such/thing" in reply.json["message"]


async def test_wrong_method_is_json_405(api) -> None:
    reply = await api.delete("/v1/version")
    assert reply.status == 405
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json["status"] == 405
    assert "GET" in reply.headers["Allow"] and "POST" in reply.headers["Allow"]


async def test_unexpected_exception_is_a_short_500(api) -> None:
    reply = await api.get("/v1/test/boom")
    assert reply.status == 500
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json["status"] == 500
    assert "RuntimeError" in reply.json["message"]
    assert "Traceback" not in reply.body.decode()
    assert "secret internal detail" not in reply.body.decode()
    assert len(reply.json["message"]) < 200


async def test_aiohttp_http_errors_are_json(api) -> None:
    reply = await api.get("/v1/test/aiohttp_error")
    assert reply.status == 403
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json == {"status": 403, "message": "not for you"}


# -- bodies -----------------------------------------------------------------------------------------------------------

async def test_get_and_delete_with_an_empty_object_body(api, project) -> None:
    pid = project["project_id"]
    assert (await api.get("/v1/version", {})).status == 200
    assert (await api.get(f"/v1/projects/{pid}", {})).status == 200
    assert (await api.get("/v1/projects", {})).status == 200
    assert (await api.delete(f"/v1/projects/{pid}", {})).status == 204


async def test_client_project_create_body(api, projects_dir) -> None:
    reply = await api.post("/v1/projects", {"name": None, "project_id": None, "temporary": True})
    assert reply.status == 201
    uuid.UUID(reply.json["project_id"])
    assert reply.json["temporary"] is True
    assert (projects_dir / reply.json["project_id"] / ".gns3_temporary").read_text() == "1"


async def test_malformed_json(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    reply = await api.post("/v1/projects", raw=b'{"name": "x",')
    assert reply.status == 400
    assert reply.json["message"].startswith("Invalid JSON ")
    assert reply.json["request"] == {"malformed_json": '{"name": "x",'}
    assert reply.json["path"] == "/v1/projects"
    assert reply.headers["Content-Type"] == "application/json"
    assert tree_snapshot(projects_dir) == before


async def test_body_that_is_not_utf8(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    reply = await api.post("/v1/projects", raw=b'{"name": "\xff\xfe"}')
    assert reply.status == 400
    assert reply.json["message"].startswith("Invalid JSON")
    assert "malformed_json" in reply.json["request"]
    assert tree_snapshot(projects_dir) == before


async def test_wrong_type(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    reply = await api.post("/v1/projects", {"name": 42})
    assert reply.status == 400
    assert reply.json["message"].startswith("Invalid JSON: name: 42 is not of type")
    assert reply.json["path"] == "/v1/projects"
    assert reply.json["request"] == {"name": 42}
    reply = await api.post("/v1/projects", ["not", "an", "object"])
    assert reply.status == 400
    assert "is not of type 'object'" in reply.json["message"]
    assert tree_snapshot(projects_dir) == before


async def test_unknown_field(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    reply = await api.post("/v1/projects", {"name": "p", "colour": "red"})
    assert reply.status == 400
    assert "Additional properties are not allowed ('colour' was unexpected)" in reply.json["message"]
    assert reply.json["path"] == "/v1/projects"
    assert reply.json["request"] == {"name": "p", "colour": "red"}
    assert (await api.get("/v1/projects")).json == []
    assert tree_snapshot(projects_dir) == before


async def test_bad_uuid_in_path(api) -> None:
    reply = await api.get("/v1/projects/x")
    assert reply.status == 400
    assert reply.json["message"] == "Project ID x is not a valid UUID"
    assert reply.json["path"] == "/v1/projects/{project_id}"
    assert reply.json["request"] == {}


async def test_lenient_uuid_forms_pass_the_check(api) -> None:
    # Python's UUID parser accepts the 32-hex form; the lookup is by exact string, so it is then unknown (404).
    reply = await api.get(f"/v1/projects/{uuid.uuid4().hex}")
    assert reply.status == 404


async def test_content_length_zero_counts_as_empty_object(api) -> None:
    status, headers, body = await raw_http(
        api.client.server.port,
        b"POST /v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert status == 201
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["name"] is None


# -- authentication ---------------------------------------------------------------------------------------------------

async def test_basic_auth_header_accepted_when_auth_is_off(api) -> None:
    reply = await api.get("/v1/version", headers={"Authorization": basic("admin", "whatever")})
    assert reply.status == 200


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"auth": "true", "user": "alice", "password": "s3cr"}}])
async def test_auth_on(api) -> None:
    reply = await api.get("/v1/version")
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="GNS3 server"'
    reply = await api.get("/v1/version", headers={"Authorization": basic("alice", "wrong")})
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    reply = await api.post("/v1/projects", {"name": "p"}, headers={"Authorization": basic("mallory", "s3cr")})
    assert reply.status == 401
    reply = await api.get("/v1/version", headers={"Authorization": basic("alice", "s3cr")})
    assert reply.status == 200
    assert reply.json["version"] == "1.5.4"
    reply = await api.post("/v1/projects", {"name": "p"}, headers={"Authorization": basic("alice", "s3cr")})
    assert reply.status == 201


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"auth": "true", "user": "", "password": "x"}}])
async def test_auth_with_empty_user_is_off(api) -> None:
    assert (await api.get("/v1/version")).status == 200


# -- per-VM lock ------------------------------------------------------------------------------------------------------

def overlaps(spans) -> bool:
    spans = sorted(spans, key=lambda s: s[1])
    return any(later[1] < earlier[2] for earlier, later in zip(spans, spans[1:], strict=False))


async def test_requests_on_one_vm_run_one_at_a_time(api, gns3_server) -> None:
    BOOM.spans.clear()
    same, other = str(uuid.uuid4()), str(uuid.uuid4())
    replies = await asyncio.gather(*(api.post(f"/v1/test/vms/{same}/slow", {}) for _ in range(4)))
    assert all(r.status == 204 for r in replies)
    assert len(BOOM.spans) == 4 and not overlaps(BOOM.spans)
    BOOM.spans.clear()
    await asyncio.gather(api.post(f"/v1/test/vms/{same}/slow"), api.post(f"/v1/test/vms/{other}/slow"))
    assert overlaps(BOOM.spans)  # different VMs run in parallel
    assert len(gns3_server.locks) == 0
    reply = await api.post("/v1/test/vms/nope/slow")
    assert reply.status == 400 and reply.json["message"] == "VM ID nope is not a valid UUID"
