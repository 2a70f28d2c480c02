"""A small bootable Linux guest made from Debian packages, for labs without internet and for the Qemu tests.

Debian's standard kernel (the package `linux-image-amd64` depends on, fetched with `apt-get download`) plus a
busybox-static initramfs whose `/init` loads the few modules it needs (e1000 for the NIC, virtio-blk for a disk, the
ACPI button for a clean power-off), gives eth0 the address `guestip=` of the kernel command line, and runs a shell
(prompt `guest# `) on the serial console. It reaches its prompt in about 6 s under software emulation.

    python -m gns3_qemu.guest DIR      # writes DIR/vmlinuz and DIR/initrd.gz (built once, cached)

Needs apt (with `apt-get update` done), busybox-static and cpio. docs/qemu.md says how to upload and boot it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("GNS3CORE_TEST_CACHE", "~/.cache/gns3core-tests")).expanduser() / "qemu-guest"
FILE_NAMES = ("vmlinuz", "initrd.gz")
META_PACKAGE = "linux-image-amd64"
BUSYBOX = Path("/bin/busybox")
# Modules the guest loads, in this order; their dependencies are added before them.
MODULES = ("e1000", "virtio_pci", "virtio_blk", "button", "evdev")
PROMPT = "guest# "
ROOT_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "lib/modules", "etc", "tmp")

INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko 2>/dev/null; done
ip link set lo up
ip link set eth0 up 2>/dev/null
IP=$(sed -n 's/.*guestip=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
[ -n "$IP" ] && ip addr add "$IP" dev eth0
# The ACPI power button (qemu monitor `system_powerdown`) powers the guest off, as a real OS would.
mkdir -p /etc/acpi/PWRF /var/log /var/run
printf '#!/bin/sh\\nsync\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -c /etc/acpi -l /var/log/acpid.log
echo BOOT-OK
export PS1='guest# '
exec setsid cttyhack sh
"""


@dataclass(frozen=True)
class Guest:
    kernel: Path
    initrd: Path
    prompt: str = PROMPT


class GuestUnavailable(RuntimeError):
    """The guest cannot be built here (no apt, no busybox-static, no cpio...); the message says what is missing."""


def _run(argv: list[str], cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, check=False, timeout=600)
    except FileNotFoundError as exc:
        raise GuestUnavailable(f"{argv[0]} is not installed") from exc
    if result.returncode != 0:
        raise GuestUnavailable(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def kernel_package() -> str:
    """The versioned kernel package the meta-package points to today (e.g. linux-image-6.1.0-56-amd64)."""
    out = _run(["apt-cache", "depends", META_PACKAGE]).decode()
    match = re.search(r"Depends:\s*(linux-image-[^\s]+)", out)
    if not match:
        raise GuestUnavailable(f"{META_PACKAGE} has no kernel dependency in apt-cache (run apt-get update?)")
    return match.group(1)


def module_dependencies(ko: Path) -> list[str]:
    """The `depends=` list a kernel module carries in its .modinfo section."""
    match = re.search(rb"depends=([^\x00]*)\x00", ko.read_bytes())
    if not match or not match.group(1):
        return []
    return match.group(1).decode().split(",")


def _modules_in_order(module_root: Path) -> list[Path]:
    by_name = {p.name[:-3].replace("-", "_"): p for p in module_root.rglob("*.ko")}
    ordered: list[Path] = []

    def visit(name: str) -> None:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            raise GuestUnavailable(f"kernel module {name} not found in the kernel package")
        if path in ordered:
            return
        for dep in module_dependencies(path):
            visit(dep)
        ordered.append(path)

    for module in MODULES:
        visit(module)
    return ordered


def _make_initrd(rootfs: Path, target: Path) -> None:
    names = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*"))
    archive = _run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=rootfs, stdin="\n".join([".", *names]).encode())
    with gzip.open(target, "wb", compresslevel=6) as out:
        out.write(archive)


def build(cache_dir: Path = CACHE_DIR) -> Guest:
    """Build the guest into cache_dir unless it is already there; returns the kernel and initrd paths."""
    # The recipe's hash names the cache entry, so editing /init or the module list rebuilds the guest.
    recipe = hashlib.sha256((INIT_SCRIPT + ",".join(MODULES + ROOT_DIRS)).encode()).hexdigest()[:12]
    cache_dir = cache_dir / recipe
    kernel, initrd = cache_dir / "vmlinuz", cache_dir / "initrd.gz"
    if kernel.is_file() and initrd.is_file():
        return Guest(kernel, initrd)
    if not BUSYBOX.is_file():
        raise GuestUnavailable("busybox-static is not installed (/bin/busybox missing)")
    package = kernel_package()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gns3-guest-") as tmp:
        work = Path(tmp)
        _run(["apt-get", "download", package], cwd=work)
        deb = next(work.glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(work / "pkg")])
        vmlinuz = next((work / "pkg" / "boot").glob("vmlinuz-*"))
        modules = _modules_in_order(work / "pkg" / "lib" / "modules")
        rootfs = work / "rootfs"
        for sub in ROOT_DIRS:
            (rootfs / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        for module in modules:
            shutil.copy2(module, rootfs / "lib" / "modules" / module.name)
        (rootfs / "lib" / "modules" / "order").write_text("\n".join(m.name[:-3] for m in modules) + "\n")
        init = rootfs / "init"
        init.write_text(INIT_SCRIPT)
        init.chmod(0o755)
        _make_initrd(rootfs, work / "initrd.gz")
        # Move into place last, initrd after kernel: a half-built cache is never mistaken for a complete one.
        shutil.copy2(vmlinuz, cache_dir / "vmlinuz.tmp")
        os.replace(cache_dir / "vmlinuz.tmp", kernel)
        shutil.copy2(work / "initrd.gz", cache_dir / "initrd.gz.tmp")
        os.replace(cache_dir / "initrd.gz.tmp", initrd)
    return Guest(kernel, initrd)


def export(target: Path, cache_dir: Path = CACHE_DIR) -> tuple[Path, Path]:
    """Build (or reuse) the guest and copy its kernel and initrd into `target` as vmlinuz and initrd.gz."""
    guest = build(cache_dir)
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for source, name in zip((guest.kernel, guest.initrd), FILE_NAMES, strict=True):
        shutil.copy2(source, target / f"{name}.tmp")
        os.replace(target / f"{name}.tmp", target / name)
        copies.append(target / name)
    return copies[0], copies[1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m gns3_qemu.guest DIR   (writes DIR/vmlinuz and DIR/initrd.gz)", file=sys.stderr)
        return 2
    try:
        kernel, initrd = export(Path(args[0]))
    except GuestUnavailable as exc:
        print(f"The guest cannot be built here: {exc}", file=sys.stderr)
        return 1
    print(kernel)
    print(initrd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
