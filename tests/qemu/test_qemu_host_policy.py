"""What a request may make the server run or touch on its host: no uploaded program is ever run, options that
reach host files or programs are refused on a server that is not local, and a local server takes absolute paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("qemu_binary")

EVIL_SCRIPT = b"#!/bin/sh\ntouch \"$(dirname \"$0\")/pwned\"\n"


def vms(project: dict) -> str:
    return f"/v1/projects/{project['project_id']}/qemu/vms"


async def upload_program(api, images_dir: Path, name: str) -> Path:
    reply = await api.post(f"/v1/qemu/vms/{name}", raw=EVIL_SCRIPT)
    assert reply.status == 204
    path = images_dir / name
    assert not path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


async def test_uploaded_qemu_img_is_never_run(api, images_dir: Path) -> None:
    program = await upload_program(api, images_dir, "qemu-img")
    body = {"qemu_img": str(program), "path": "disk.qcow2", "format": "qcow2", "size": 1}
    reply = await api.post("/v1/qemu/img", body)
    assert reply.status == 409
    os.chmod(program, 0o700)  # even made executable by other means, a file under the images directory is refused
    reply = await api.post("/v1/qemu/img", body)
    assert reply.status == 409 and "refused" in reply.json["message"]
    assert not (images_dir / "pwned").exists() and not (images_dir / "disk.qcow2").exists()


async def test_uploaded_qemu_binary_is_never_run(api, project, images_dir: Path) -> None:
    program = await upload_program(api, images_dir, "qemu-system-x86_64")
    os.chmod(program, 0o700)
    reply = await api.post(vms(project), {"name": "evil", "qemu_path": str(program)})
    assert reply.status == 409 and "refused" in reply.json["message"]
    vm = (await api.post(vms(project), {"name": "ok", "qemu_path": "qemu-system-x86_64"})).json
    reply = await api.put(f"{vms(project)}/{vm['vm_id']}", {"qemu_path": str(program)})
    assert reply.status == 409
    assert (await api.get(f"{vms(project)}/{vm['vm_id']}")).json["qemu_path"] == vm["qemu_path"]
    assert not (images_dir / "pwned").exists()


async def test_path_entries_inside_the_images_directory_do_not_count(api, project, images_dir: Path,
                                                                     monkeypatch) -> None:
    program = await upload_program(api, images_dir, "qemu-system-x86_64")
    os.chmod(program, 0o700)
    monkeypatch.setenv("PATH", f"{images_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(images_dir)  # the working directory is searched too
    listed = (await api.get("/v1/qemu/binaries")).json
    assert listed and all(not item["path"].startswith(str(images_dir)) for item in listed)
    reply = await api.post(vms(project), {"name": "vm", "qemu_path": "qemu-system-x86_64"})
    assert reply.status == 201 and not reply.json["qemu_path"].startswith(str(images_dir))


async def test_qemu_create_without_binary_or_platform_says_which_field(api, project) -> None:
    reply = await api.post(vms(project), {"name": "vm"})
    assert reply.status == 400
    assert "qemu_path" in reply.json["message"] and "platform" in reply.json["message"]
    assert "None" not in reply.json["message"]


REFUSED_OPTIONS = [
    "-chardev file,id=c0,path=/etc/passwd", "-chardev socket,id=c1,path=/run/x.sock,server=on",
    "-serial file:/tmp/out.txt", "-serial pipe:/tmp/p", "-serial mon:telnet::4444,server=on",
    "-monitor tcp:127.0.0.1:4444,server=on,wait=off", "-qmp unix:/tmp/q.sock,server=on",
    "-drive file=/etc/shadow,if=ide", "-drive file=fat:rw:/etc,if=ide", "-kernel /boot/vmlinuz", "-initrd /etc/x",
    "-virtfs local,path=/,mount_tag=h,security_model=none", "-fsdev local,id=f,path=/",
    "-netdev tap,id=n0,script=/tmp/up.sh", "-netdev user,id=n1,smb=/home", "-plugin /tmp/libevil.so",
    "-run-with user=nobody", "-device e1000,romfile=/etc/shadow", "-object memory-backend-file,id=m,mem-path=/etc",
    "-blockdev {\"driver\":\"file\",\"node-name\":\"d\",\"filename\":\"/etc/shadow\"}", "-D /tmp/qemu.log",
    "-drive file=../../../../../etc/passwd,if=ide", "-readconfig /etc/qemu.conf", "--virtfs local,path=/",
]


@pytest.mark.parametrize("options", REFUSED_OPTIONS)
async def test_options_touching_the_host_are_refused_on_a_remote_server(api, project, options) -> None:
    reply = await api.post(vms(project), {"name": "vm", "qemu_path": "qemu-system-x86_64", "options": options})
    assert reply.status == 409, options
    message = reply.json["message"]
    assert "is refused on this server" in message and "--local" in message
    assert options.split()[0] in message


async def test_harmless_options_and_paths_inside_the_sandbox_pass(api, project, images_dir: Path) -> None:
    (images_dir / "bios.bin").write_bytes(b"x")
    options = (f"-nographic -cpu qemu64 -rtc base=utc -bios {images_dir / 'bios.bin'} -drive file=extra.qcow2,if=ide "
               "-netdev tap,id=t,ifname=tap0,script=no,downscript=no -serial tcp:127.0.0.1:5555,server=on,wait=off")
    reply = await api.post(vms(project), {"name": "vm", "qemu_path": "qemu-system-x86_64", "options": options})
    assert reply.status == 201, reply
    assert reply.json["options"] == options


async def test_remote_server_refuses_absolute_disk_outside_images(api, project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.qcow2"
    outside.write_bytes(b"x")
    reply = await api.post(vms(project), {"name": "vm", "qemu_path": "qemu-system-x86_64",
                                          "hda_disk_image": str(outside)})
    assert reply.status == 409
    assert "not allowed on this remote server" in reply.json["message"]


class TestLocalServer:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"local": "true"}}

    async def test_local_server_accepts_absolute_paths_and_options(self, api, project, tmp_path: Path) -> None:
        outside = tmp_path / "outside" / "disk.qcow2"
        outside.parent.mkdir()
        outside.write_bytes(b"x")
        reply = await api.post(vms(project), {"name": "vm", "qemu_path": "qemu-system-x86_64",
                                              "hda_disk_image": str(outside), "cdrom_image": str(outside),
                                              "options": "-serial file:/tmp/x.txt -virtfs local,path=/tmp"})
        assert reply.status == 201, reply
        assert reply.json["hda_disk_image"] == str(outside) and reply.json["cdrom_image"] == str(outside)
        assert "remote" not in str(reply.json)

    async def test_uploaded_program_is_refused_even_on_a_local_server(self, api, images_dir: Path) -> None:
        program = await upload_program(api, images_dir, "qemu-img")
        os.chmod(program, 0o700)
        body = {"qemu_img": str(program), "path": str(images_dir / "d.qcow2"), "format": "qcow2", "size": 1}
        assert (await api.post("/v1/qemu/img", body)).status == 409
        assert not (images_dir / "pwned").exists()
