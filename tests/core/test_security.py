"""Hostile input and hostile web pages: cross-origin refusal, Host checks, auth on every path, bounded bodies, and
the classes of bad input that must answer 400/409 instead of 500."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import pytest
from core_helpers import raw_http, tree_snapshot

from gns3core import access
from gns3core.plugins import load_plugins
from gns3core.routing import MAX_JSON_BODY
from gns3core.schemas import unbounded_strings

EVIL = "http://evil.example"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- schemas --------------------------------------------------------------------------------------------------------

def test_every_registered_request_string_has_a_max_length() -> None:
    """Every route of the core and of every installed plugin (whoever wrote it) bounds its strings."""
    _pm, registry, report = load_plugins(use_entry_points=True)
    unbounded = {f"{r.method} {r.path} ({r.plugin})": where for r in registry.routes if r.input is not None
                 for where in [unbounded_strings(r.input)] if where}
    assert not unbounded, unbounded
    assert len(registry.routes) > 10


def test_unbounded_strings_finds_them_everywhere() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": ["string", "null"], "maxLength": 3}, "c": {"enum": ["x"]},
        "d": {"type": "array", "items": {"type": "string"}},
        "e": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    }, "definitions": {"f": {"type": "string", "pattern": "x"}}, "additionalProperties": {"type": "string"}}
    assert sorted(unbounded_strings(schema)) == sorted([
        "/properties/a", "/properties/d/items", "/properties/e/oneOf/1", "/definitions/f", "/additionalProperties"])


async def test_schema_errors_name_the_field_and_stay_short(api, project) -> None:
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "n"})).json
    url = f"/v1/projects/{pid}/example/vms/{vm['vm_id']}/adapters/0/ports/0/nio"
    reply = await api.post(url, {"type": "nio_bogus"})
    assert reply.status == 400
    message = reply.json["message"]
    assert len(message) < 400, message
    assert message.startswith("Invalid JSON: type: \"nio_bogus\" is not one of")
    assert "nio_udp" in message and "nio_tap" in message
    assert set(reply.json) == {"status", "message", "path", "request", "method"}  # `method`: released 1.5.x
    reply = await api.post(url, {"type": "nio_udp", "lport": 1, "rhost": "127.0.0.1"})
    assert reply.status == 400 and reply.json["message"] == "Invalid JSON: 'rport' is a required property"
    reply = await api.post(url, {"type": "nio_udp", "lport": 0, "rhost": "127.0.0.1", "rport": 1})
    assert reply.status == 400 and reply.json["message"].startswith("Invalid JSON: lport: 0 is less than the minimum")
    reply = await api.post(url, {"type": "nio_udp", "lport": 1, "rhost": "h" * 1_000_000, "rport": 1})
    assert reply.status == 400
    assert reply.json["message"] == "Invalid JSON: rhost is too long: 1000000 characters, at most 253 allowed"
    assert len(reply.body) < 2000


# -- cross-site requests --------------------------------------------------------------------------------------------

async def test_cross_origin_post_is_refused_and_changes_nothing(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    # What a web page can send without a preflight: a "simple" text/plain POST.
    reply = await api.post("/v1/projects", raw=b'{"name": "pwned"}',
                           headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert reply.status == 403
    assert "allowed_origins" in reply.json["message"]
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert (await api.get("/v1/projects")).json == []
    assert tree_snapshot(projects_dir) == before
    for method in ("GET", "PUT", "DELETE", "OPTIONS", "HEAD"):
        reply = await api.request(method, "/v1/version", headers={"Origin": EVIL})
        assert reply.status == 403, method


async def test_body_is_json_whatever_its_content_type(api) -> None:
    """The GNS3 client and `curl -d` send no JSON content type; without an Origin that is fine."""
    reply = await api.post("/v1/projects", raw=b'{"name": "plain"}', headers={"Content-Type": "text/plain"})
    assert reply.status == 201 and reply.json["name"] == "plain"
    reply = await api.post("/v1/projects", raw=b'{"name": "form"}',
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 201 and reply.json["name"] == "form"


@pytest.mark.parametrize("gns3_config_overrides",
                         [{"Server": {"allowed_origins": "http://lab.example:8080, https://ui.example"}}])
async def test_configured_origin_gets_cors(api) -> None:
    reply = await api.post("/v1/projects", {"name": "p"}, headers={"Origin": "http://lab.example:8080"})
    assert reply.status == 201
    assert reply.headers["Access-Control-Allow-Origin"] == "http://lab.example:8080"
    reply = await api.request("OPTIONS", "/v1/projects", headers={"Origin": "https://ui.example",
                                                                  "Access-Control-Request-Method": "POST"})
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert (await api.get("/v1/version", headers={"Origin": EVIL})).status == 403


async def test_same_origin_page_is_allowed(api) -> None:
    """A page the server serves itself (the OpenAPI page) may call it: same scheme, host and port."""
    port = api.client.server.port
    reply = await api.get("/v1/version", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert reply.status == 200


async def test_host_header_is_checked(api) -> None:
    """DNS rebinding: a page of evil.example re-pointed to 127.0.0.1 still names evil.example in Host."""
    port = api.client.server.port
    request = f"GET /v1/version HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n".encode()
    status, _headers, body = await raw_http(port, request)
    assert status == 403 and b"allowed_hosts" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]:8000", "127.0.0.1"):
        request = f"GET /v1/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        status, _headers, _body = await raw_http(port, request)
        assert status == 200, host


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"allowed_hosts": "gns3.lab.example"}}])
async def test_configured_host_name(api) -> None:
    port = api.client.server.port
    request = f"GET /v1/version HTTP/1.1\r\nHost: gns3.lab.example:{port}\r\nConnection: close\r\n\r\n".encode()
    assert (await raw_http(port, request))[0] == 200


# -- auth -----------------------------------------------------------------------------------------------------------

AUTH = {"Server": {"auth": "true", "user": "alice", "password": "s3cr"}}


@pytest.mark.parametrize("gns3_config_overrides", [AUTH])
async def test_auth_on_every_path_and_method(api) -> None:
    for method, path in [("GET", "/v1/no/such/path"), ("OPTIONS", "/v1/version"), ("HEAD", "/v1/version"),
                         ("DELETE", "/v1/version"), ("GET", "/"), ("GET", "/v1/openapi.json"),
                         ("GET", f"/v1/projects/{uuid.uuid4()}")]:
        reply = await api.request(method, path)
        assert reply.status == 401, (method, path)
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="GNS3 server"'
    good = {"Authorization": basic("alice", "s3cr")}
    assert (await api.get("/v1/no/such/path", headers=good)).status == 404
    assert (await api.get("/v1/version", headers=good)).status == 200


@pytest.mark.parametrize("gns3_config_overrides", [AUTH])
async def test_credentials_are_compared_in_constant_time(api, monkeypatch) -> None:
    calls = []
    real = access.hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", recording)
    assert (await api.get("/v1/version", headers={"Authorization": basic("alice", "nope")})).status == 401
    assert calls and calls[-1][1] == basic("alice", "s3cr").encode()


# -- bounded bodies and bad input -------------------------------------------------------------------------------------

async def test_json_body_is_bounded(api) -> None:
    reply = await api.post("/v1/projects", raw=b'{"name": "' + b"x" * (MAX_JSON_BODY + 10) + b'"}')
    assert reply.status == 413
    assert reply.json["status"] == 413 and "MiB" in reply.json["message"]


async def test_deeply_nested_json_is_a_400(api) -> None:
    for depth in (100_000, 990, 5000):
        reply = await api.post("/v1/projects", raw=b"[" * depth + b"]" * depth)
        assert reply.status == 400, depth
        assert reply.json["message"].startswith("Invalid JSON")
    reply = await api.post("/v1/projects", raw=b'{"name": ' + b"[" * 900 + b"]" * 900 + b"}")
    assert reply.status == 400
    assert len(reply.body) < 5000


async def test_lone_surrogates_and_nul_are_a_400(api, projects_dir) -> None:
    before = tree_snapshot(projects_dir)
    for raw in (b'{"name": "\\ud800"}', b'{"name": "a\\u0000b"}', b'{"\\udfff": 1}', b'{"path": "/tmp/x\\u0000"}'):
        reply = await api.post("/v1/projects", raw=raw)
        assert reply.status == 400, raw
        assert reply.json["message"].startswith("Invalid JSON")
    reply = await api.post("/v1/projects", raw=b'{"name": "\\ud83d\\ude00 ok"}')  # a valid pair is fine
    assert reply.status == 201 and reply.json["name"] == "\U0001F600 ok"
    del before


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"local": "true"}}])
async def test_path_over_the_os_limit_is_a_409(api, tmp_path) -> None:
    reply = await api.post("/v1/projects", {"name": "long", "path": str(tmp_path / ("n" * 300))})
    assert reply.status == 409
    assert "File name too long" in reply.json["message"]


async def test_rhost_idna_cannot_encode_is_a_409(api, project) -> None:
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "n"})).json
    url = f"/v1/projects/{pid}/example/vms/{vm['vm_id']}/adapters/0/ports/0/nio"
    for rhost in ("a" * 64 + ".example", "xn--\u00e9.example", "."):
        reply = await api.post(url, {"type": "nio_udp", "lport": 20000, "rhost": rhost, "rport": 20001})
        assert reply.status in (400, 409), (rhost, reply)
        assert reply.json["message"]


async def test_big_string_does_not_freeze_the_server(api) -> None:
    """A 4 MB string is refused by its schema in well under a second, and other clients stay served meanwhile."""
    body = json.dumps({"name": "x" * (4 * 1024 * 1024)}).encode()
    started = time.monotonic()
    big = asyncio.ensure_future(api.post("/v1/projects", raw=body))
    others = [await api.get("/v1/version") for _ in range(5)]
    reply = await big
    assert reply.status == 400 and "too long" in reply.json["message"]
    assert time.monotonic() - started < 5  # generous liveness bound; bench/drills.py measures
    assert all(o.status == 200 for o in others)


# -- binding --------------------------------------------------------------------------------------------------------

def test_non_loopback_bind_without_auth_refuses_to_start(tmp_path) -> None:
    import subprocess
    import sys

    from gns3core.testing.ports import free_tcp_port

    config = tmp_path / "gns3_server.conf"
    config.write_text(f"[Server]\nprojects_path = {tmp_path / 'p'}\nimages_path = {tmp_path / 'i'}\n")
    argv = [sys.executable, "-m", "gns3core", "--host", "0.0.0.0", "--port", str(free_tcp_port()), "--config",
            str(config), "--quiet"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "auth = true" in result.stderr and "allow_remote_without_auth" in result.stderr


def test_bind_refusal_rules() -> None:
    from gns3core.cli import unprotected_bind_refusal
    from gns3core.config import Config

    def refusal(**server: str) -> str | None:
        return unprotected_bind_refusal(Config(files=[], overrides={"Server": server}).server)

    assert refusal(host="127.0.0.1") is None
    assert refusal(host="::1") is None
    assert refusal(host="localhost") is None
    assert refusal(host="0.0.0.0") is not None
    assert refusal(host="192.0.2.1") is not None
    assert refusal(host="0.0.0.0", auth="true", user="u", password="p") is None
    assert refusal(host="0.0.0.0", auth="true", user="") is not None
    assert refusal(host="0.0.0.0", allow_remote_without_auth="true") is None


# -- projects -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"local": "true"}}])
async def test_nested_project_directories_are_refused(api, tmp_path) -> None:
    outer = (await api.post("/v1/projects", {"name": "outer", "path": str(tmp_path / "lab")})).json
    (tmp_path / "lab" / "keep.txt").write_text("precious")
    for path in (tmp_path / "lab" / "inner", tmp_path / "lab", tmp_path, tmp_path / "lab" / "x" / ".." / "y"):
        reply = await api.post("/v1/projects", {"name": "nested", "path": str(path)})
        assert reply.status == 409, path
        assert outer["project_id"] in reply.json["message"]
    for path in ("/", str(tmp_path / "projects" / "..")):
        reply = await api.post("/v1/projects", {"name": "everything", "path": path})
        assert reply.status == 409, path
    other = (await api.post("/v1/projects", {"name": "other", "path": str(tmp_path / "other")})).json
    reply = await api.put(f"/v1/projects/{other['project_id']}", {"path": str(tmp_path / "lab" / "sub")})
    assert reply.status == 409
    assert (await api.get(f"/v1/projects/{other['project_id']}")).json["path"] == str(tmp_path / "other")
    assert (await api.delete(f"/v1/projects/{other['project_id']}")).status == 204
    assert (tmp_path / "lab" / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"max_projects": "3"}}])
async def test_open_projects_are_capped(api) -> None:
    ids = [(await api.post("/v1/projects", {"name": f"p{i}"})).json["project_id"] for i in range(3)]
    reply = await api.post("/v1/projects", {"name": "one too many"})
    assert reply.status == 409 and "max_projects" in reply.json["message"]
    assert (await api.post(f"/v1/projects/{ids[0]}/close")).status == 204
    assert (await api.post("/v1/projects", {"name": "fits again"})).status == 201


class TestEveryInstalledPlugin:
    """The installed plugins (Docker, Qemu, ...) mounted as in production."""

    @pytest.fixture
    def gns3_use_entry_points(self) -> bool:
        return True

    async def test_huge_command_lines_are_refused_without_freezing(self, api, project) -> None:
        """A 4 MB Docker startcmd froze the server for minutes (quadratic shlex on the event loop): now the schema
        refuses it at once, and another client's GET /v1/version is answered meanwhile."""
        pid = project["project_id"]
        bodies = [(f"/v1/projects/{pid}/docker/vms", {"name": "d", "image": "busybox", "start_command": "x " * 2**21}),
                  (f"/v1/projects/{pid}/docker/images", {"name": "d", "imagename": "busybox",
                                                         "startcmd": "x " * 2**21}),
                  (f"/v1/projects/{pid}/qemu/vms", {"name": "q", "platform": "x86_64", "options": "-a " * 2**18})]
        for url, body in bodies:
            started = time.monotonic()
            big = asyncio.ensure_future(api.post(url, body))
            quick = await api.get("/v1/version")
            reply = await big
            assert reply.status == 400, (url, reply)
            assert "too long" in reply.json["message"] and len(reply.json["message"]) < 200
            assert quick.status == 200
            assert time.monotonic() - started < 5  # generous liveness bound; bench/drills.py reports the time
