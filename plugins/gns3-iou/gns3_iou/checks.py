"""Checks made before an IOU image is started, each failing with a 409 a person can act on (run in a thread)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from gns3core.errors import EmulatorError

ELF_32_LITTLE_ENDIAN = b"\x7fELF\x01\x01\x01"
L1_KEEPALIVE_HELP = re.compile(r"-l\s+Enable Layer 1 keepalive messages")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def check_image(path: Path | None) -> None:
    """The image exists, is a 32-bit little-endian ELF and is executable."""
    if path is None:
        raise EmulatorError("No IOU image is set for this VM: give its 'path' (a file in the images' IOU folder)")
    try:
        info = path.stat()
    except FileNotFoundError:
        raise EmulatorError(f"IOU image '{path}' does not exist: upload it (POST /v1/iou/vms/<name>) or fix "
                            "'path'") from None
    except OSError as exc:
        raise EmulatorError(f"Cannot use IOU image '{path}': {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise EmulatorError(f"IOU image '{path}' is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(ELF_32_LITTLE_ENDIAN))
    except OSError as exc:
        raise EmulatorError(f"Cannot read IOU image '{path}': {exc.strerror or exc}") from None
    if head != ELF_32_LITTLE_ENDIAN:
        raise EmulatorError(f"'{path}' is not a valid IOU image: it must be a 32-bit little-endian ELF program "
                            f"(its first bytes are {head.hex(' ') or 'missing'})")
    if not os.access(path, os.X_OK):
        raise EmulatorError(f"IOU image '{path}' is not executable (chmod u+x it, or upload it again through "
                            "the API, which makes IOU images executable)")


def missing_libraries(path: Path) -> list[str]:
    """Shared libraries `ldd` cannot find for the image ([] when ldd is not installed, as IOU servers tolerate)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        result = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=30, check=False,
                                env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return _NOT_FOUND.findall(result.stdout)


def check_libraries(path: Path) -> None:
    missing = missing_libraries(path)
    if missing:
        raise EmulatorError(f"IOU image '{path}' needs shared libraries that are not installed: "
                            f"{', '.join(missing)}. Install their 32-bit (i386) packages; see docs/iou.md")


def supports_l1_keepalives(path: Path, env: dict[str, str], cwd: Path) -> bool:
    """Whether `<image> -h` advertises -l (layer 1 keepalives)."""
    try:
        result = subprocess.run([str(path), "-h"], capture_output=True, timeout=30, check=False, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EmulatorError(f"IOU image '{path}' did not answer '-h' within 30 s") from None
    except OSError as exc:
        raise EmulatorError(exec_failure(path, exc)) from None
    output = (result.stdout + result.stderr).decode(errors="replace")
    return bool(L1_KEEPALIVE_HELP.search(output))


def exec_failure(path: Path, exc: OSError) -> str:
    """The message for an image the kernel refused to run."""
    import errno

    if exc.errno == errno.ENOENT and path.exists():
        return (f"Could not start IOU image '{path}': the kernel could not load it; 32-bit binary support is "
                "probably not installed (Debian: apt-get install libc6-i386)")
    return f"Could not start IOU image '{path}': {exc.strerror or exc}"
