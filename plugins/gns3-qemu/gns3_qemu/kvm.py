"""Whether KVM really works here: asked once per Qemu binary, answered without ever hanging a VM start.

A `/dev/kvm` node is not enough: in nested or sandboxed VMs it can exist while guests hang or abort under KVM.
So KVM is used only when the CPU advertises vmx/svm, `/dev/kvm` opens read-write, and a bounded probe of the very
binary (paused machine, `info kvm` on the monitor) says it is enabled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

KVM_PLATFORMS = frozenset({"x86_64", "i386"})
PROBE_TIMEOUT = 5.0
_cache: dict[str, tuple[bool, str]] = {}


def cpu_has_virtualization(cpuinfo: str) -> bool:
    """True when some `flags` line of /proc/cpuinfo lists vmx (Intel VT-x) or svm (AMD-V)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            if flags & {"vmx", "svm"}:
                return True
    return False


def host_reason() -> str | None:
    """Why this host cannot run KVM guests, or None when it might."""
    if not sys.platform.startswith("linux"):
        return "KVM exists on Linux only"
    try:
        with open("/proc/cpuinfo") as handle:
            cpuinfo = handle.read()
    except OSError:
        cpuinfo = ""
    if not cpu_has_virtualization(cpuinfo):
        return "the CPU shows no hardware virtualization (no vmx/svm flag)"
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm doesn't exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by the server's user"
    return None


async def _probe(qemu_path: str) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            qemu_path, "-accel", "kvm", "-machine", "pc", "-m", "16", "-display", "none", "-nodefaults", "-S",
            "-monitor", "stdio", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        return False, f"the KVM probe could not run: {exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(b"info kvm\nquit\n"), PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"the KVM probe did not answer within {PROBE_TIMEOUT:.0f} s"
    text = out.decode(errors="replace")
    if "kvm support: enabled" in text:
        return True, ""
    return False, f"the KVM probe failed: {text.strip()[-300:]}"


async def kvm_usable(qemu_path: str, platform: str) -> tuple[bool, str]:
    """(usable, reason it is not). Host checks first, so a host without vmx/svm never runs the probe."""
    if platform not in KVM_PLATFORMS:
        return False, f"KVM does not accelerate the {platform} platform"
    reason = host_reason()
    if reason is not None:
        return False, reason
    if qemu_path not in _cache:
        _cache[qemu_path] = await _probe(qemu_path)
        log.info("KVM with %s: %s", qemu_path, "usable" if _cache[qemu_path][0] else _cache[qemu_path][1])
    return _cache[qemu_path]


def host_kvm_platforms(machine: str) -> list[str]:
    """What KVM could accelerate on this host's CPU: x86_64 hosts run x86_64 and i386 guests."""
    if machine in ("x86_64", "amd64", "AMD64"):
        return ["x86_64", "i386"]
    if machine in ("i386", "i486", "i586", "i686", "x86"):
        return ["i386"]
    return [machine]


async def accelerated_platforms(excluded: Iterable[Path] = ()) -> list[str]:
    """`GET /v1/qemu/capabilities`: each platform whose qemu-system binary passes the KVM checks and probe here.

    GNS3 1.5.x answered from the presence of /dev/kvm alone; on a machine where /dev/kvm exists but KVM guests hang
    (nested or sandboxed VMs) that would make a client install appliances that cannot run.
    """
    from gns3_qemu import binaries

    result = []
    for arch in host_kvm_platforms(platform.machine()):
        qemu_path = binaries.which(f"qemu-system-{arch}", list(excluded))
        if qemu_path is not None and (await kvm_usable(qemu_path, arch))[0]:
            result.append(arch)
    return result
