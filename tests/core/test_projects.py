"""Projects: create/list/get/update/close/commit/delete, their directories on disk, file listing and download."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from core_helpers import get_request, raw_http, tree_snapshot

from gns3core.projects import TEMPORARY_MARKER

LOCAL = {"Server": {"local": "true"}}


async def create(api, **body):
    reply = await api.post("/v1/projects", body)
    assert reply.status == 201, reply
    return reply.json


# -- create -----------------------------------------------------------------------------------------------------------

async def test_create_default(api, projects_dir) -> None:
    reply = await api.post("/v1/projects", {"name": "lab"})
    assert reply.status == 201
    assert reply.headers["Content-Type"] == "application/json"
    project = reply.json
    pid = project["project_id"]
    assert uuid.UUID(pid).version == 4
    assert project == {"name": "lab", "project_id": pid, "location": str(projects_dir),
                       "path": str(projects_dir / pid), "temporary": False}
    assert (projects_dir / pid).is_dir()
    assert not (projects_dir / pid / TEMPORARY_MARKER).exists()


async def test_create_with_known_id_returns_it_unchanged(api, projects_dir) -> None:
    pid = str(uuid.uuid4())
    first = await create(api, name="one", project_id=pid)
    assert first["project_id"] == pid
    before = tree_snapshot(projects_dir)
    reply = await api.post("/v1/projects", {"name": "two", "project_id": pid, "temporary": True})
    assert reply.status == 201
    assert reply.json == first
    assert tree_snapshot(projects_dir) == before
    assert len((await api.get("/v1/projects")).json) == 1


async def test_create_temporary_writes_marker(api, projects_dir) -> None:
    project = await create(api, name="tmp", temporary=True)
    assert (Path(project["path"]) / TEMPORARY_MARKER).read_text() == "1"


async def test_create_with_path_inside_projects_dir(api, projects_dir) -> None:
    project = await create(api, name="custom", path=str(projects_dir / "mine"))
    assert project["path"] == str(projects_dir / "mine")
    assert (projects_dir / "mine").is_dir()


async def test_remote_server_refuses_path_outside_projects_dir(api, projects_dir, tmp_path) -> None:
    projects_dir.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "elsewhere"
    before = tree_snapshot(tmp_path)
    for path in (str(outside), str(projects_dir / ".." / "elsewhere"), "../elsewhere", str(projects_dir), "/"):
        reply = await api.post("/v1/projects", {"name": "escape", "path": path})
        assert reply.status == 403, path
        assert "outside the projects directory" in reply.json["message"]
    assert tree_snapshot(tmp_path) == before
    assert (await api.get("/v1/projects")).json == []


async def test_two_open_projects_cannot_share_a_directory(api, projects_dir) -> None:
    first = await create(api, name="first")
    reply = await api.post("/v1/projects", {"name": "second", "path": first["path"]})
    assert reply.status == 409
    assert first["project_id"] in reply.json["message"]
    assert len((await api.get("/v1/projects")).json) == 1


@pytest.mark.parametrize("gns3_config_overrides", [LOCAL])
async def test_local_server_accepts_path_anywhere(api, tmp_path) -> None:
    project = await create(api, name="anywhere", path=str(tmp_path / "elsewhere"))
    assert project["path"] == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").is_dir()


async def test_startup_purges_leftover_temporary_projects(projects_dir, aiohttp_client, gns3_app) -> None:
    leftover = projects_dir / str(uuid.uuid4())
    kept = projects_dir / str(uuid.uuid4())
    (leftover / "project-files").mkdir(parents=True)
    (leftover / TEMPORARY_MARKER).write_text("1")
    kept.mkdir()
    await aiohttp_client(gns3_app)
    assert not leftover.exists()
    assert kept.is_dir()


# -- list / get -------------------------------------------------------------------------------------------------------

async def test_list_and_get(api) -> None:
    assert (await api.get("/v1/projects")).json == []
    a = await create(api, name="a")
    b = await create(api, name=None, temporary=True)
    listed = (await api.get("/v1/projects")).json
    assert sorted(listed, key=lambda p: p["project_id"]) == sorted([a, b], key=lambda p: p["project_id"])
    reply = await api.get(f"/v1/projects/{b['project_id']}")
    assert reply.status == 200
    assert reply.json == b
    assert reply.headers["X-Route"] == "/v1/projects/{project_id}"


async def test_get_unknown_and_bad_id(api) -> None:
    pid = str(uuid.uuid4())
    reply = await api.get(f"/v1/projects/{pid}")
    assert reply.status == 404
    assert reply.json == {"status": 404, "message": f"Project ID {pid} doesn't exist"}
    reply = await api.get("/v1/projects/12345")
    assert reply.status == 400
    assert reply.json["message"] == "Project ID 12345 is not a valid UUID"


# -- update -----------------------------------------------------------------------------------------------------------

async def test_update_name_and_temporary(api, project) -> None:
    pid = project["project_id"]
    marker = Path(project["path"]) / TEMPORARY_MARKER
    reply = await api.put(f"/v1/projects/{pid}", {"name": "renamed", "temporary": True})
    assert reply.status == 200
    assert reply.json["name"] == "renamed" and reply.json["temporary"] is True
    assert marker.read_text() == "1"
    reply = await api.put(f"/v1/projects/{pid}", {"name": None, "temporary": False})
    assert reply.json["name"] is None and reply.json["temporary"] is False
    assert not marker.exists()
    assert (await api.get(f"/v1/projects/{pid}")).json == reply.json


async def test_update_bad_input_changes_nothing(api, project, projects_dir, tmp_path) -> None:
    pid = project["project_id"]
    before = tree_snapshot(projects_dir)
    reply = await api.put(f"/v1/projects/{pid}", {"name": "x", "colour": "red"})
    assert reply.status == 400
    assert reply.json["path"] == "/v1/projects/{project_id}"
    assert reply.json["request"] == {"name": "x", "colour": "red"}
    reply = await api.put(f"/v1/projects/{pid}", {"temporary": "yes"})
    assert reply.status == 400
    reply = await api.put(f"/v1/projects/{pid}", {"name": "moved", "path": str(tmp_path / "moved")})
    assert reply.status == 403
    assert reply.json["message"] == "You are not allowed to modify the project directory location"
    assert (await api.get(f"/v1/projects/{pid}")).json == project  # the name was not applied either
    assert tree_snapshot(projects_dir) == before
    assert not (tmp_path / "moved").exists()


@pytest.mark.parametrize("gns3_config_overrides", [LOCAL])
async def test_update_path_local(api, tmp_path) -> None:
    project = await create(api, name="mover", temporary=True)
    old = Path(project["path"])
    (old / "project-files").mkdir()
    new = tmp_path / "moved"
    reply = await api.put(f"/v1/projects/{project['project_id']}", {"path": str(new)})
    assert reply.status == 200
    assert reply.json["path"] == str(new)
    assert (new / TEMPORARY_MARKER).read_text() == "1"
    assert not old.exists()  # a temporary project's old directory goes
    # A non-temporary project keeps its old directory (nothing is copied or moved).
    reply = await api.put(f"/v1/projects/{project['project_id']}", {"temporary": False})
    assert not (new / TEMPORARY_MARKER).exists()
    newer = tmp_path / "newer"
    reply = await api.put(f"/v1/projects/{project['project_id']}", {"path": str(newer)})
    assert reply.json["path"] == str(newer)
    assert new.is_dir() and newer.is_dir()
    other = await create(api, name="other")
    reply = await api.put(f"/v1/projects/{project['project_id']}", {"path": other["path"], "name": "x"})
    assert reply.status == 409
    assert (await api.get(f"/v1/projects/{project['project_id']}")).json["name"] == "mover"


# -- close / delete ---------------------------------------------------------------------------------------------------

async def test_close_keeps_a_normal_project_and_forgets_it(api, gns3_server) -> None:
    project = await create(api, name="keep")
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "vm"})).json
    reply = await api.post(f"/v1/projects/{pid}/close", {})
    assert reply.status == 204
    assert Path(project["path"]).is_dir()
    assert (await api.get(f"/v1/projects/{pid}")).status == 404
    assert vm["console"] not in gns3_server.ports.tcp_used
    assert vm["vm_id"] not in gns3_server.emulators["example"].vms
    # Reopening with the same id uses the same directory.
    assert (await create(api, project_id=pid))["path"] == project["path"]


async def test_close_deletes_a_temporary_project(api) -> None:
    project = await create(api, name="tmp", temporary=True)
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert not Path(project["path"]).exists()
    assert (await api.get("/v1/projects")).json == []


async def test_delete_removes_the_directory(api, gns3_server) -> None:
    project = await create(api, name="gone")
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "vm"})).json
    udp = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    (Path(project["path"]) / "notes.txt").write_text("x")
    reply = await api.delete(f"/v1/projects/{pid}")
    assert reply.status == 204
    assert not Path(project["path"]).exists()
    assert (await api.get(f"/v1/projects/{pid}")).status == 404
    assert vm["console"] not in gns3_server.ports.tcp_used
    assert udp not in gns3_server.ports.udp_used
    assert gns3_server.ports.ports_of(pid) == (set(), set())
    assert (await api.delete(f"/v1/projects/{pid}")).status == 404


async def test_project_routes_unknown_and_bad_ids(api) -> None:
    pid = str(uuid.uuid4())
    for method, suffix in (("DELETE", ""), ("POST", "/close"), ("POST", "/commit"), ("GET", "/files"),
                           ("GET", "/files/a.txt"), ("GET", "/notifications"), ("PUT", "")):
        reply = await api.request(method, f"/v1/projects/{pid}{suffix}", {})
        assert reply.status == 404, (method, suffix)
        assert reply.json["message"] == f"Project ID {pid} doesn't exist"
        reply = await api.request(method, f"/v1/projects/not-an-id{suffix}", {})
        assert reply.status == 400, (method, suffix)
        assert reply.json["message"] == "Project ID not-an-id is not a valid UUID"


# -- commit -----------------------------------------------------------------------------------------------------------

async def test_commit_removes_directories_of_deleted_vms(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    gone = (await api.post(base, {"name": "gone"})).json
    kept = (await api.post(base, {"name": "kept"})).json
    manager = gns3_server.emulators["example"]
    gone_dir = manager.vms[gone["vm_id"]].vm_directory
    kept_dir = manager.vms[kept["vm_id"]].vm_directory
    (gone_dir / "disk.img").write_bytes(b"x")
    assert (await api.delete(f"{base}/{gone['vm_id']}")).status == 204
    assert gone_dir.is_dir()  # kept until commit
    reply = await api.post(f"/v1/projects/{pid}/commit", {})
    assert reply.status == 204
    assert not gone_dir.exists()
    assert kept_dir.is_dir()


async def test_commit_keeps_a_vm_recreated_with_the_same_id(api, project, gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/example/vms"
    vm = (await api.post(base, {"name": "undo"})).json
    directory = gns3_server.emulators["example"].vms[vm["vm_id"]].vm_directory
    (directory / "config.txt").write_text("precious")
    await api.delete(f"{base}/{vm['vm_id']}")
    assert (await api.post(base, {"name": "undo", "vm_id": vm["vm_id"]})).status == 201  # the client's undo
    await api.post(f"/v1/projects/{pid}/commit")
    assert (directory / "config.txt").read_text() == "precious"


# -- files ------------------------------------------------------------------------------------------------------------

def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def test_files_listing(api, project, tmp_path) -> None:
    root = Path(project["path"])
    (root / "project-files" / "vpcs" / "abc").mkdir(parents=True)
    (root / "project-files" / "vpcs" / "abc" / "startup.vpc").write_bytes(b"ip 10.0.0.1\n")
    (root / "project-files" / "dynamips").mkdir(parents=True)
    (root / "project-files" / "dynamips" / "c7200.ghost").write_bytes(b"ghost")
    (root / "top.gns3").write_bytes(b"{}")
    (tmp_path / "secret").write_bytes(b"secret")
    os.symlink(tmp_path / "secret", root / "link-out")
    reply = await api.get(f"/v1/projects/{project['project_id']}/files")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    listing = sorted(reply.json, key=lambda f: f["path"])
    assert listing == [
        {"path": os.path.join("project-files", "vpcs", "abc", "startup.vpc"), "md5sum": md5(b"ip 10.0.0.1\n")},
        {"path": "top.gns3", "md5sum": md5(b"{}")},
    ]


async def test_file_download(api, project) -> None:
    root = Path(project["path"])
    (root / "project-files" / "qemu").mkdir(parents=True)
    data = os.urandom(200_000)
    (root / "project-files" / "qemu" / "disk.bin").write_bytes(data)
    (root / "inside-link").symlink_to(root / "project-files" / "qemu" / "disk.bin")
    reply = await api.get(f"/v1/projects/{project['project_id']}/files/project-files/qemu/disk.bin")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["X-Route"] == "/v1/projects/{project_id}/files/{path:.+}"
    assert reply.body == data
    reply = await api.get(f"/v1/projects/{project['project_id']}/files/inside-link")
    assert reply.status == 200 and reply.body == data
    reply = await api.get(f"/v1/projects/{project['project_id']}/files/project-files/nothing.txt")
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    reply = await api.get(f"/v1/projects/{project['project_id']}/files/project-files")
    assert reply.status == 404


async def test_file_download_refuses_escapes(api, project, tmp_path, projects_dir) -> None:
    root = Path(project["path"])
    pid = project["project_id"]
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    (root / "project-files").mkdir()
    (root / "project-files" / ".hidden").write_text("TOP-SECRET hidden")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "escape-dir").symlink_to(tmp_path)
    other = await create(api, name="neighbour")
    (Path(other["path"]) / "theirs.txt").write_text("THEIR-CONTENT")
    before = tree_snapshot(tmp_path)
    port = api.client.server.port
    base = f"/v1/projects/{pid}/files/"
    for path in ("..%2F..%2Fsecret.txt", "%2E%2E/%2E%2E/secret.txt", "..%2F" + other["project_id"] + "%2Ftheirs.txt",
                 "%2F" + str(tmp_path / "secret.txt").lstrip("/"), "/" + str(tmp_path / "secret.txt").lstrip("/"),
                 ".gns3_temporary", "project-files/.hidden", "project-files/..%2F..%2F..%2Fsecret.txt",
                 "escape", "escape-dir/secret.txt"):
        status, headers, body = await raw_http(port, get_request(base + path))
        assert status == 403, (path, status, body)
        assert b"TOP-SECRET" not in body and b"THEIR-CONTENT" not in body
        assert headers["content-type"] == "application/json"
    assert tree_snapshot(tmp_path) == before


# -- nothing on disk changes on bad input ------------------------------------------------------------------------------

async def test_bad_requests_leave_the_disk_alone(api, project, projects_dir, tmp_path) -> None:
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "vm"})).json
    (Path(project["path"]) / "keep.txt").write_text("keep")
    before = tree_snapshot(tmp_path)
    bad = [
        ("POST", "/v1/projects", b'{"name": '),
        ("POST", "/v1/projects", b'{"name": "x", "unknown": 1}'),
        ("POST", "/v1/projects", b'{"project_id": "not-a-uuid"}'),
        ("POST", "/v1/projects", b'{"path": "/etc"}'),
        ("POST", "/v1/projects", b'{"path": "../../outside"}'),
        ("PUT", f"/v1/projects/{pid}", b'{"path": "/tmp/elsewhere"}'),
        ("PUT", f"/v1/projects/{pid}", b'{"temporary": 1}'),
        ("PUT", f"/v1/projects/{pid}", b"[1, 2"),
        ("DELETE", "/v1/projects/xyz", b""),
        ("DELETE", f"/v1/projects/{uuid.uuid4()}", b""),
        ("POST", f"/v1/projects/{uuid.uuid4()}/close", b""),
        ("POST", "/v1/projects/0/commit", b""),
        ("POST", f"/v1/projects/{pid}/example/vms", b'{"name": 3}'),
        ("POST", f"/v1/projects/{pid}/example/vms", b'{"name": "v", "bogus": true}'),
        ("PUT", f"/v1/projects/{pid}/example/vms/{vm['vm_id']}", b'{"console": "x"}'),
        ("DELETE", f"/v1/projects/{pid}/example/vms/{uuid.uuid4()}", b""),
        ("GET", "/v1/files/stream", b'{"location": "/etc/passwd"}'),
        ("POST", "/v1/config/reload", b""),
        ("POST", "/v1/server/shutdown", b""),
    ]
    for method, path, body in bad:
        reply = await api.request(method, path, raw=body)
        assert reply.status in (400, 403, 404), (method, path, reply)
        assert reply.json["status"] == reply.status
    assert tree_snapshot(tmp_path) == before
    assert len((await api.get("/v1/projects")).json) == 1
