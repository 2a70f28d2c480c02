"""Portable projects (released GNS3 1.5.x): export streamed as a zip, import all or nothing, project file writes."""

from __future__ import annotations

import io
import json
import os
import stat
import uuid
import zipfile
from pathlib import Path

import archive_helpers as hostile
import pytest
from core_helpers import tree_snapshot

from gns3core.project_export import content_disposition, image_base_name, portable_topology

# -- export -------------------------------------------------------------------------------------------------------


def fill_project(root: Path, images: Path) -> None:
    """A project directory as GNS3 1.5 leaves it, with what an export must leave out."""
    files = {
        "project-files/vpcs/aaaa/startup.vpc": "set pcname PC1\n",
        "project-files/vpcs/aaaa/vpcs.log": "log\n",
        "project-files/qemu/bbbb/hda_disk.qcow2": "overlay",
        "project-files/captures/link.pcap": "pcap",
        "project-files/snapshots/before.gns3project": "zip",
        "project-files/dynamips/c7200_i1_log.txt": "log",
        "servers/vm/project-files/docker/cccc/etc/network/interfaces": "auto eth0\n",
        ".DS_Store": "mac",
        ".gns3_temporary": "1",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (images / "QEMU").mkdir(parents=True, exist_ok=True)
    (images / "QEMU" / "linux.qcow2").write_bytes(b"image" * 100)
    topology = json.loads(json.dumps(hostile.TOPOLOGY))
    topology["topology"]["nodes"][1]["properties"]["hda_disk_image"] = str(images / "QEMU" / "linux.qcow2")
    topology["topology"]["nodes"].append({"id": 3, "type": "DockerVM", "properties": {"image": "busybox:latest"}})
    topology["topology"]["nodes"].append({"id": 4, "type": "QemuVM", "properties": {"cdrom_image": "/etc/passwd"}})
    (root / "lab.gns3").write_text(json.dumps(topology))
    os.symlink("/etc/passwd", root / "project-files" / "vpcs" / "aaaa" / "passwd")  # never followed


async def export(api, project_id: str, query: str = "") -> tuple[int, dict, zipfile.ZipFile | None, bytes]:
    async with api.client.get(f"/v1/projects/{project_id}/export{query}") as response:
        body = await response.read()
        archive = zipfile.ZipFile(io.BytesIO(body)) if response.status == 200 else None
        return response.status, dict(response.headers), archive, body


async def test_export_layout_and_headers(api, project, tmp_path) -> None:
    images = tmp_path / "images"
    fill_project(Path(project["path"]), images)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        status, headers, archive, _ = await export(api, project["project_id"], "?include_images=1")
        assert status == 200
        warning = {"action": "ping"}
        while warning["action"] == "ping":
            warning = json.loads(await stream.content.readline())
    assert headers["Content-Type"] == "application/gns3project"
    assert headers["Content-Disposition"] == ("attachment; filename=\"test.gns3project\"; "
                                              "filename*=UTF-8''test.gns3project")
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert archive is not None and archive.testzip() is None
    assert sorted(archive.namelist()) == [
        "images/QEMU/linux.qcow2",
        "project-files/docker/cccc/etc/network/interfaces",  # servers/vm/ merged into the root
        "project-files/qemu/bbbb/hda_disk.qcow2",
        "project-files/vpcs/aaaa/startup.vpc",
        "project.gns3",
    ]
    assert archive.read("images/QEMU/linux.qcow2") == b"image" * 100
    topology = json.loads(archive.read("project.gns3"))
    nodes = topology["topology"]["nodes"]
    assert nodes[1]["properties"]["hda_disk_image"] == "linux.qcow2"
    assert nodes[2]["properties"]["image"] == "busybox:latest"  # a Docker image name is not a file
    assert nodes[3]["properties"]["cdrom_image"] == "passwd"
    # This server is not local: /etc/passwd is outside its images directory and stays out of the archive.
    assert warning["action"] == "log.warning" and "/etc/passwd" in warning["event"]["message"]
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.flag_bits & 0x08  # written while streamed


async def test_export_without_images_and_queries(api, project, tmp_path) -> None:
    fill_project(Path(project["path"]), tmp_path / "images")
    status, _, archive, _ = await export(api, project["project_id"], "?include_images=0")
    assert status == 200 and not [n for n in archive.namelist() if n.startswith("images/")]
    status, _, archive, _ = await export(api, project["project_id"])
    assert status == 200 and "project.gns3" in archive.namelist()
    for query in ("?include_images=yes", "?colour=red", "?include_images=" + "1" * 40):
        reply = await api.get(f"/v1/projects/{project['project_id']}/export{query}")
        assert reply.status == 400, query
        assert reply.json["method"] == "GET"
    reply = await api.get(f"/v1/projects/{uuid.uuid4()}/export")
    assert reply.status == 404


async def test_export_of_an_empty_project_is_an_empty_zip(api, project) -> None:
    status, _, archive, body = await export(api, project["project_id"])
    assert status == 200 and archive.namelist() == [] and len(body) == 22  # just the end record


def test_export_helpers() -> None:
    assert image_base_name("C:\\GNS3\\images\\IOS\\c7200.image") == "c7200.image"
    assert image_base_name("/home/u/GNS3/images/QEMU/a.qcow2") == "a.qcow2"
    topology = {"topology": {"nodes": [{"type": "IOUDevice", "properties": {"path": "x", "image": "/a/i86.bin"}},
                                       "not a node", {"type": "C7200", "properties": None}]}}
    assert portable_topology(topology) == [("IOUDevice", "/a/i86.bin")]
    assert topology["topology"]["nodes"][0]["properties"] == {"path": "x", "image": "i86.bin"}
    quoted = content_disposition('la"b\r\nX: y é.gns3project')
    assert "\r" not in quoted and "\n" not in quoted and 'filename="la_b__X: y _.gns3project"' in quoted
    assert "filename*=UTF-8''la%22b%0D%0AX%3A%20y%20%C3%A9.gns3project" in quoted


# -- import -------------------------------------------------------------------------------------------------------


def disk_state(gns3_server) -> dict[str, dict[str, str]]:
    """Everything an import could touch: the projects directory (staging included) and the images directory."""
    config = gns3_server.config.server
    return {"projects": tree_snapshot(Path(config.get("projects_path"))),
            "images": tree_snapshot(Path(config.get("images_path")))}


async def test_import_into_a_new_project(api, gns3_server) -> None:
    project_id = str(uuid.uuid4())
    created = await api.post("/v1/projects", {"project_id": project_id, "name": "imported"})
    assert created.status == 201
    reply = await api.post(f"/v1/projects/{project_id}/import?gns3vm=0", raw=hostile.project_archive(),
                           headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 201, reply
    assert reply.json == created.json
    root = Path(created.json["path"])
    assert not (root / "project.gns3").exists()
    topology = json.loads((root / "imported.gns3").read_text())  # the file the 1.5.4 client opens next
    assert topology["project_id"] == project_id and topology["name"] == "imported"
    assert topology["topology"]["servers"] == [{"id": 1, "local": True, "vm": False}]
    assert [node["server_id"] for node in topology["topology"]["nodes"]] == [1, 1]
    assert (root / "project-files/vpcs/aaaa/startup.vpc").read_text() == "set pcname PC1\nip 10.0.0.1 24\n"
    assert (root / "project-files/qemu/bbbb/hda_disk.qcow2").read_bytes().startswith(b"QFI\xfb")
    assert [p.name for p in root.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


async def test_import_for_a_gns3_vm_opens_the_project(api, gns3_server) -> None:
    """Without `gns3vm` (default 1), Qemu files go under servers/vm/ and Qemu nodes to server 2, as 1.5.4 does; an
    unknown project is opened with defaults and takes the archive's name."""
    project_id = str(uuid.uuid4())
    reply = await api.post(f"/v1/projects/{project_id}/import", raw=hostile.project_archive())
    assert reply.status == 201, reply
    assert reply.json["project_id"] == project_id and reply.json["name"] == "lab"
    root = Path(reply.json["path"])
    assert (root / "servers/vm/project-files/qemu/bbbb/hda_disk.qcow2").is_file()
    assert not (root / "project-files/qemu").exists() and (root / "project-files/vpcs/aaaa/startup.vpc").is_file()
    topology = json.loads((root / "lab.gns3").read_text())
    assert topology["topology"]["servers"] == [{"id": 1, "local": True, "vm": False},
                                               {"id": 2, "local": False, "vm": True}]
    assert [node["server_id"] for node in topology["topology"]["nodes"]] == [1, 2]
    assert (await api.get(f"/v1/projects/{project_id}")).status == 200


async def test_export_then_import_gives_the_same_files(api, project, tmp_path) -> None:
    fill_project(Path(project["path"]), tmp_path / "images")
    _, _, _, body = await export(api, project["project_id"], "?include_images=1")
    target = (await api.post("/v1/projects", {"name": "copy"})).json
    reply = await api.post(f"/v1/projects/{target['project_id']}/import?gns3vm=0", raw=body)
    assert reply.status == 201, reply
    copy = Path(target["path"])
    for name in ("project-files/vpcs/aaaa/startup.vpc", "project-files/qemu/bbbb/hda_disk.qcow2"):
        assert (copy / name).read_bytes() == (Path(project["path"]) / name).read_bytes()
    assert (copy / "project-files/docker/cccc/etc/network/interfaces").read_text() == "auto eth0\n"
    assert not (copy / ".gns3_temporary").exists() and not (copy / "project-files" / "captures").exists()
    assert json.loads((copy / "copy.gns3").read_text())["project_id"] == target["project_id"]


async def test_import_replaces_files_and_keeps_the_others(api, project) -> None:
    root = Path(project["path"])
    (root / "project-files/vpcs/aaaa").mkdir(parents=True)
    (root / "project-files/vpcs/aaaa/startup.vpc").write_text("old\n")
    (root / "notes.txt").write_text("mine\n")
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=hostile.project_archive())
    assert reply.status == 201
    assert (root / "project-files/vpcs/aaaa/startup.vpc").read_text().startswith("set pcname")
    assert (root / "notes.txt").read_text() == "mine\n"


async def test_import_images(api, project, gns3_server, tmp_path) -> None:
    images = tmp_path / "images"
    archive = hostile.project_archive({"images/QEMU/linux.qcow2": b"new image"})
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=archive)
    assert reply.status == 201
    assert (images / "QEMU" / "linux.qcow2").read_bytes() == b"new image"
    assert not (Path(project["path"]) / "images").exists()
    # The same image again: fine. Another image under the same name: refused on a server that is not local.
    assert (await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=archive)).status == 201
    (images / "QEMU" / "linux.qcow2.md5sum").write_text("0" * 32)
    before = disk_state(gns3_server)
    other = hostile.project_archive({"images/QEMU/linux.qcow2": b"another image", "extra.txt": "x"})
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=other)
    assert reply.status == 409 and "QEMU/linux.qcow2 already exists" in reply.json["message"]
    assert disk_state(gns3_server) == before


class TestLocalServer:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"local": "true"}}

    async def test_a_local_server_replaces_an_image(self, api, project, tmp_path) -> None:
        images = tmp_path / "images" / "QEMU"
        images.mkdir(parents=True)
        (images / "linux.qcow2").write_bytes(b"old")
        (images / "linux.qcow2.md5sum").write_text("0" * 32)
        archive = hostile.project_archive({"images/QEMU/linux.qcow2": b"newer"})
        reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=archive)
        assert reply.status == 201
        assert (images / "linux.qcow2").read_bytes() == b"newer"
        assert not (images / "linux.qcow2.md5sum").exists()  # the old checksum went with the old image


HOSTILE = {
    "parent directory": hostile.zip_bytes({"project.gns3": "{}", "project-files/../../escape.txt": "x"}),
    "absolute path": hostile.zip_bytes({"/tmp/gns3-escape.txt": "x"}),
    "drive letter": hostile.zip_bytes({"C:/escape.txt": "x"}),
    "backslash": hostile.zip_bytes({"project-files\\..\\..\\escape.txt": "x"}),
    "symlink": hostile.symlink_member(),
    "fifo": hostile.fifo_member(),
    "duplicate": hostile.duplicate_member(),
    "file and folder": hostile.zip_bytes({"project-files": "x", "project-files/a.txt": "y"}),
    "overlapping members": hostile.overlapping_bomb(),
    "lying size": hostile.lying_size(),
    "encrypted": hostile.encrypted_flag(),
    "bzip2": hostile.bzip2_member(),
    "damaged": hostile.damaged_crc(),
    "truncated": hostile.project_archive()[:-30],
    "not a zip": b"this is not an archive" * 10,
    "empty body": b"",
    "topology not json": hostile.zip_bytes({"project.gns3": "{not json"}),
    "topology not an object": hostile.zip_bytes({"project.gns3": "[1, 2]"}),
    "dot component": hostile.zip_bytes({"./project-files/a.txt": "x"}),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_a_hostile_or_broken_archive_changes_nothing(api, project, gns3_server, kind) -> None:
    root = Path(project["path"])
    (root / "project-files/vpcs/aaaa").mkdir(parents=True)
    (root / "project-files/vpcs/aaaa/startup.vpc").write_text("kept\n")
    before = disk_state(gns3_server)
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=HOSTILE[kind])
    assert reply.status == 400, reply
    assert reply.json["message"].startswith("Cannot import the project: ")
    assert reply.json["message"].endswith("nothing was changed")
    assert disk_state(gns3_server) == before
    assert not Path("/tmp/gns3-escape.txt").exists()


async def test_a_refused_import_into_an_unknown_project_leaves_no_project(api, gns3_server) -> None:
    before = disk_state(gns3_server)
    project_id = str(uuid.uuid4())
    reply = await api.post(f"/v1/projects/{project_id}/import", raw=hostile.symlink_member())
    assert reply.status == 400
    assert (await api.get(f"/v1/projects/{project_id}")).status == 404
    assert disk_state(gns3_server) == before


class TestLimits:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"import_max_size": "1", "import_max_files": "5", "import_max_ratio": "50"}}

    async def test_size_count_and_ratio_limits(self, api, project, gns3_server) -> None:
        before = disk_state(gns3_server)
        url = f"/v1/projects/{project['project_id']}/import?gns3vm=0"
        many = hostile.zip_bytes({f"f{i}": "x" for i in range(6)})
        reply = await api.post(url, raw=many)
        assert reply.status == 400 and "6 members, more than the 5 allowed" in reply.json["message"]
        big = hostile.zip_bytes({"a": os.urandom(700_000), "b": os.urandom(700_000)}, zipfile.ZIP_STORED)
        reply = await api.post(url, raw=big)
        assert reply.status == 413 and "larger than the 1 MiB allowed" in reply.json["message"]
        expanding = hostile.zip_bytes({"zeros": bytes(900_000)})
        reply = await api.post(url, raw=expanding)
        assert reply.status == 400 and "would expand more than 50 times" in reply.json["message"]
        text = os.urandom(300_000).hex().encode()  # shrinks about twice: a small archive, 1.2 MB of content
        reply = await api.post(url, raw=hostile.zip_bytes({"a": text, "b": text}))
        assert reply.status == 400 and "content is larger than the 1 MiB allowed" in reply.json["message"]
        assert disk_state(gns3_server) == before


async def test_import_refused_while_the_project_has_vms(api, project, gns3_server) -> None:
    await api.post(f"/v1/projects/{project['project_id']}/example/vms", {"name": "busy"})
    before = disk_state(gns3_server)
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=hostile.project_archive())
    assert reply.status == 409 and "has open VMs" in reply.json["message"]
    assert disk_state(gns3_server) == before


async def test_import_query_is_checked(api, project) -> None:
    for query in ("?gns3vm=maybe", "?path=/etc"):
        reply = await api.post(f"/v1/projects/{project['project_id']}/import{query}", raw=hostile.project_archive())
        assert reply.status == 400, query


def test_leftover_staging_is_removed_at_start(tmp_path) -> None:
    from gns3core.project_import import STAGING_PREFIX, remove_leftover_staging

    leftover = tmp_path / f"{STAGING_PREFIX}abc"
    (leftover / "content").mkdir(parents=True)
    kept = tmp_path / "11111111-1111-4111-8111-111111111111"
    kept.mkdir()
    remove_leftover_staging(tmp_path)
    assert not leftover.exists() and kept.is_dir()


# -- writing one project file -----------------------------------------------------------------------------------


async def test_write_a_project_file(api, project) -> None:
    root = Path(project["path"])
    folder = root / "project-files/docker/cccc/etc/network"
    folder.mkdir(parents=True)
    url = f"/v1/projects/{project['project_id']}/files/project-files/docker/cccc/etc/network/interfaces"
    reply = await api.post(url, raw=b"auto eth0\niface eth0 inet dhcp\n")
    assert reply.status == 200 and reply.body == b""
    assert (folder / "interfaces").read_bytes() == b"auto eth0\niface eth0 inet dhcp\n"
    assert stat.S_IMODE((folder / "interfaces").stat().st_mode) == 0o644
    (folder / "interfaces").chmod(0o600)
    assert (await api.post(url, raw=b"replaced\n")).status == 200
    assert (folder / "interfaces").read_bytes() == b"replaced\n"
    assert stat.S_IMODE((folder / "interfaces").stat().st_mode) == 0o600  # the mode of the file it replaced
    assert (await api.get(url)).body == b"replaced\n"
    assert sorted(p.name for p in folder.iterdir()) == ["interfaces"]  # no temporary file left


async def test_project_file_writes_stay_inside(api, project, tmp_path) -> None:
    base = f"/v1/projects/{project['project_id']}/files"
    root = Path(project["path"])
    (root / "project-files").mkdir()
    os.symlink(tmp_path, root / "project-files" / "out")
    before = tree_snapshot(tmp_path)
    for path, status in (("..%2F..%2Fescape.txt", 403),
                         (".gns3_temporary", 403), ("project-files/.hidden", 403),
                         ("project-files/out/escape.txt", 403), ("missing/folder/file.txt", 404),
                         ("project-files", 403)):
        reply = await api.post(f"{base}/{path}", raw=b"x")
        assert reply.status == status, (path, reply)
    assert tree_snapshot(tmp_path) == before


class TestFileSizeLimit:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"project_file_max_size": "1"}}

    async def test_a_file_over_the_limit_is_refused(self, api, project) -> None:
        root = Path(project["path"])
        (root / "project-files").mkdir()
        (root / "project-files" / "big").write_bytes(b"before")
        url = f"/v1/projects/{project['project_id']}/files/project-files/big"
        reply = await api.post(url, raw=b"x" * (1024 * 1024 + 1))
        assert reply.status == 413
        assert (root / "project-files" / "big").read_bytes() == b"before"

        async def chunks():  # no Content-Length: counted as it arrives
            for _ in range(20):
                yield b"y" * 65536

        async with api.client.post(url, data=chunks()) as response:
            assert response.status == 413
        assert sorted(p.name for p in (root / "project-files").iterdir()) == ["big"]
        assert (root / "project-files" / "big").read_bytes() == b"before"


async def test_a_failure_while_moving_into_place_is_undone(api, project, gns3_server, monkeypatch) -> None:
    """The last step fails half-way (a disk error on the third rename): what was moved is put back."""
    from gns3core import project_import

    root = Path(project["path"])
    (root / "project-files/vpcs/aaaa").mkdir(parents=True)
    (root / "project-files/vpcs/aaaa/startup.vpc").write_text("kept\n")
    before = disk_state(gns3_server)
    real_move, calls = project_import._move, []

    def failing_move(source: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_move(source, target)

    monkeypatch.setattr(project_import, "_move", failing_move)
    reply = await api.post(f"/v1/projects/{project['project_id']}/import?gns3vm=0", raw=hostile.project_archive())
    assert reply.status == 409 and "No space left on device" in reply.json["message"]
    assert len(calls) >= 3
    assert disk_state(gns3_server) == before


async def test_staging_left_by_a_crash_goes_at_the_next_start(gns3_config, aiohttp_client) -> None:
    from gns3core.app import create_app
    from gns3core.project_import import STAGING_PREFIX

    projects = Path(gns3_config.server.get("projects_path"))
    leftover = projects / f"{STAGING_PREFIX}crashed"
    (leftover / "content").mkdir(parents=True)
    await aiohttp_client(create_app(gns3_config, use_entry_points=False))
    assert not leftover.exists()
