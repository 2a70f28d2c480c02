"""The image store: listing, streamed uploads with their md5 sidecar, refused paths and broken-off uploads."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from gns3core.files import md5_of_file


async def raw_http(api, request: bytes, body_parts: list[bytes], close_early: bool = False) -> bytes:
    """Talk HTTP by hand to the in-process server, to send paths and bodies a client library would tidy up."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(request)
    for part in body_parts:
        writer.write(part)
        await writer.drain()
    if close_early:
        writer.transport.abort()
        return b""
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


async def test_upload_streams_with_md5(api, images_dir: Path) -> None:
    data = os.urandom(6 * 1024 * 1024 + 123)

    async def chunks():
        for start in range(0, len(data), 256 * 1024):
            yield data[start:start + 256 * 1024]

    async with api.client.post("/v1/qemu/vms/linux/disk.qcow2", data=chunks()) as response:
        assert response.status == 204
    target = images_dir / "linux" / "disk.qcow2"
    assert target.read_bytes() == data
    assert (images_dir / "linux" / "disk.qcow2.md5sum").read_text() == hashlib.md5(data).hexdigest()
    assert target.stat().st_mode & 0o777 == 0o600  # an image is data: never executable
    assert [p.name for p in (images_dir / "linux").iterdir() if p.name.startswith(".")] == []

    reply = await api.get("/v1/qemu/vms")
    assert reply.status == 200
    assert reply.json == [{"filename": "disk.qcow2", "path": "linux/disk.qcow2"}]

    # replacing an image replaces its checksum
    async with api.client.post("/v1/qemu/vms/linux/disk.qcow2", data=b"small") as response:
        assert response.status == 204
    assert (images_dir / "linux" / "disk.qcow2.md5sum").read_text() == hashlib.md5(b"small").hexdigest()


async def test_upload_path_with_dotdot_is_refused(api, images_dir: Path, tmp_path: Path) -> None:
    for path in ("/v1/qemu/vms/%2E%2E/%2E%2E/escaped.img", "/v1/qemu/vms/a/%2e%2e/%2e%2e/%2e%2e/escaped.img",
                 "/v1/qemu/vms/.hidden"):
        request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
                   "Connection: close\r\n\r\n").encode()
        answer = await raw_http(api, request, [b"evil"])
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert b"Could not write image" in answer
    assert not list(tmp_path.rglob("escaped.img"))
    # a client library normalises `..` away: the route then does not match at all
    async with api.client.post("/v1/qemu/vms/../../escaped.img", data=b"evil") as response:
        assert response.status in (403, 404)
    assert not list(tmp_path.rglob("escaped.img"))


async def test_broken_upload_leaves_no_file(api, images_dir: Path) -> None:
    (images_dir / "keep.img").write_bytes(b"old image")
    (images_dir / "keep.img.md5sum").write_text(hashlib.md5(b"old image").hexdigest())
    for name in ("broken.img", "keep.img"):
        request = (f"POST /v1/qemu/vms/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
                   ).encode()
        await raw_http(api, request, [b"z" * (3 * 1024 * 1024)], close_early=True)
    for _ in range(100):  # the server notices the broken connection on its own time
        if not [p for p in images_dir.iterdir() if p.name.startswith(".")]:
            break
        await asyncio.sleep(0.05)
    names = sorted(p.name for p in images_dir.iterdir())
    assert names == ["keep.img", "keep.img.md5sum"]
    assert (images_dir / "keep.img").read_bytes() == b"old image"
    assert md5_of_file(images_dir / "keep.img") == (images_dir / "keep.img.md5sum").read_text()


async def test_image_list_skips_hidden_and_sidecars(api, images_dir: Path) -> None:
    assert (await api.get("/v1/qemu/vms")).json == []
    (images_dir / "a.img").write_bytes(b"a")
    (images_dir / "a.img.md5sum").write_text("0" * 32)
    (images_dir / ".partial").write_bytes(b"")
    (images_dir / "deep" / "er").mkdir(parents=True)
    (images_dir / "deep" / "er" / "b.qcow2").write_bytes(b"b")
    reply = await api.get("/v1/qemu/vms")
    assert reply.json == [{"filename": "a.img", "path": "a.img"}, {"filename": "b.qcow2", "path": "deep/er/b.qcow2"}]
