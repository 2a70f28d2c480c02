"""Atomic writes: a full disk fails the request with a clear 409 and leaves the old file as it was."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from core_helpers import tree_snapshot

from gns3core.errors import Conflict
from gns3core.files import atomic_write
from gns3core.projects import TEMPORARY_MARKER


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "config.cfg"
    atomic_write(target, "first")
    atomic_write(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.cfg"]


@pytest.mark.parametrize("what", ["fsync", "replace"])
def test_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch, what: str) -> None:
    target = tmp_path / "startup.vpc"
    target.write_text("old content")
    monkeypatch.setattr(os, what, disk_full)
    with pytest.raises(Conflict) as caught:
        atomic_write(target, "new content that does not fit")
    assert caught.value.status == 409
    assert caught.value.message == f"Could not write {target}: no space left on device (the previous file, if any, " \
                                   "is unchanged)"
    monkeypatch.undo()
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["startup.vpc"]  # no temporary file left behind


def test_write_error_mid_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    class FailingFile:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, data) -> None:
            self.handle.write(data[:10])
            self.handle.flush()
            disk_full()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FailingFile(real_fdopen(fd, mode)))
    with pytest.raises(Conflict, match="no space left on device"):
        atomic_write(target, b"x" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


async def test_full_disk_on_project_update_is_a_409(api, project, projects_dir, monkeypatch) -> None:
    pid = project["project_id"]
    before = tree_snapshot(projects_dir)
    monkeypatch.setattr(os, "fsync", disk_full)
    reply = await api.put(f"/v1/projects/{pid}", {"temporary": True})
    assert reply.status == 409
    assert reply.json["status"] == 409
    assert "no space left on device" in reply.json["message"]
    assert TEMPORARY_MARKER in reply.json["message"]
    monkeypatch.undo()
    assert tree_snapshot(projects_dir) == before
    assert (await api.get(f"/v1/projects/{pid}")).json["temporary"] is False  # the flag did not change either


async def test_full_disk_on_project_create_leaves_nothing(api, projects_dir, monkeypatch) -> None:
    projects_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(os, "fsync", disk_full)
    reply = await api.post("/v1/projects", {"name": "tmp", "temporary": True})
    assert reply.status == 409
    assert "no space left on device" in reply.json["message"]
    monkeypatch.undo()
    assert list(projects_dir.iterdir()) == []
    assert (await api.get("/v1/projects")).json == []
