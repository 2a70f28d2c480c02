"""An offline container image: a root filesystem of one static busybox (Debian's busybox-static) and a link per
applet, written as a tar archive for `docker import`. No registry is needed.

    python -m gns3_docker.busybox_image > busybox-rootfs.tar
    docker import -c 'CMD ["/bin/sh"]' busybox-rootfs.tar gns3/busybox:latest

(`scripts/docker-busybox-image.sh` does both.) The tests build their image with the same function.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile

DIRECTORIES = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "www")
FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
}
IMAGE_COMMAND = '["/bin/sh"]'
PT_INTERP = 3


def is_static_program(path: str) -> bool:
    """Whether an ELF program runs without a dynamic loader (so it runs inside any container image)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
                return False
            order = "little" if header[5] == 1 else "big"
            phoff = int.from_bytes(header[32:40], order)
            phentsize = int.from_bytes(header[54:56], order)
            phnum = int.from_bytes(header[56:58], order)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return False
    return all(int.from_bytes(table[i:i + 4], order) != PT_INTERP for i in range(0, len(table), phentsize))


def find_busybox(path: str | None = None) -> str:
    """The busybox program to put in the image; it must be statically linked to run in an empty root."""
    found = shutil.which(path or "busybox")
    if found is None:
        raise RuntimeError("busybox is not installed (apt-get install -y busybox-static)")
    real = os.path.realpath(found)
    if not is_static_program(real):
        raise RuntimeError(f"{real} is dynamically linked and cannot run in an empty image "
                           "(apt-get install -y busybox-static)")
    return real


def applets(busybox: str) -> list[str]:
    """Every applet this busybox provides, from `busybox --list`."""
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True, timeout=30).stdout
    return sorted({name.strip() for name in listed.split() if name.strip() and "/" not in name})


def build_rootfs_tar(busybox: str | None = None) -> bytes:
    """The root filesystem as an uncompressed tar archive: /bin/busybox, /bin/<applet> -> busybox, a root user."""
    program = find_busybox(busybox)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in DIRECTORIES:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(program, arcname="bin/busybox")
        for applet in applets(program):
            if applet == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a busybox root filesystem (tar) to standard output, for "
                                                 "`docker import -c 'CMD [\"/bin/sh\"]' - NAME:TAG`.")
    parser.add_argument("--busybox", help="busybox program to use (default: busybox on PATH; must be static)")
    args = parser.parse_args(argv)
    try:
        data = build_rootfs_tar(args.busybox)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if sys.stdout.isatty():
        print("error: the archive is binary: redirect it to a file or pipe it to docker import", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
