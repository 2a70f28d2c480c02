"""Finding Qemu and qemu-img programs, their versions, and the platform a binary emulates."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from gns3_qemu.schemas import PLATFORMS
from gns3core.errors import EmulatorError

VERSION_RE = re.compile(r"version\s+([0-9a-z\-\.]+)")
_versions: dict[tuple[str, float], str] = {}  # (path, mtime) -> version: a binary is asked once per install


def _under(path: str, roots: Iterable[Path]) -> bool:
    return any(path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep) for root in roots)


def search_dirs(excluded: Iterable[Path] = ()) -> list[Path]:
    """Where binaries are looked for: the working directory, then every PATH entry (each real directory once).

    Directories under `excluded` (the images and projects directories, where clients upload files) never count.
    """
    excluded = [Path(os.path.realpath(root)) for root in excluded]
    seen: set[str] = set()
    dirs: list[Path] = []
    for entry in [os.getcwd(), *os.environ.get("PATH", "").split(os.pathsep)]:
        if not entry:
            continue
        real = os.path.realpath(entry)
        if real in seen or not os.path.isdir(real) or _under(real, excluded):
            continue
        seen.add(real)
        dirs.append(Path(entry))
    return dirs


def is_qemu_name(name: str) -> bool:
    return name.startswith(("qemu-system", "qemu-kvm")) or name in ("qemu", "qemu.exe")


def is_qemu_img_name(name: str) -> bool:
    return name in ("qemu-img", "qemu-img.exe")


def find_programs(predicate: Callable[[str], bool], excluded: Iterable[Path] = ()) -> list[Path]:
    """Executable files whose name matches, in search order (a name found twice is listed twice, as found).

    A symlink leading into `excluded` is left out, like the directories there.
    """
    excluded = [Path(os.path.realpath(root)) for root in excluded]
    found: list[Path] = []
    for directory in search_dirs(excluded):
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if predicate(entry.name) and entry.is_file() and os.access(entry, os.X_OK) and not _under(
                    os.path.realpath(entry), excluded):
                found.append(entry)
    return found


def which(name: str, excluded: Iterable[Path] = ()) -> str | None:
    """A bare program name looked up in the working directory, then PATH."""
    excluded = list(excluded)
    for directory in search_dirs(excluded):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and not _under(os.path.realpath(candidate),
                                                                                  excluded):
            return str(candidate)
    return None


def resolve_program(value: str, predicate: Callable[[str], bool], what: str, excluded: Iterable[Path] = ()) -> str:
    """The absolute path of a program a request names, by bare name or by path; 409 unless it is one this server
    found itself (what `GET /v1/qemu/binaries` / `img-binaries` list), so no uploaded file is ever run."""
    excluded = list(excluded)
    if os.sep not in value:
        found = which(value, excluded)
        if found is None:
            raise EmulatorError(f"{what} path {value} is not found in the path")
        value = found
    path = os.path.abspath(value)
    if not os.path.isfile(path):
        raise EmulatorError(f"{what} '{path}' is not accessible")
    if not os.access(path, os.X_OK):
        raise EmulatorError(f"{what} '{path}' is not executable")
    real = os.path.realpath(path)
    known = {os.path.realpath(p) for p in find_programs(predicate, excluded)}
    if real not in known:
        raise EmulatorError(f"{what} '{path}' is refused: only the programs this server found on its PATH can be used "
                            f"(see GET /v1/qemu/{'img-binaries' if predicate is is_qemu_img_name else 'binaries'})")
    return path


def resolve_qemu_path(qemu_path: str, excluded: Iterable[Path] = ()) -> str:
    """An absolute, executable Qemu binary this server found, for a path or bare name; 409 with the reason
    otherwise."""
    return resolve_program(qemu_path, is_qemu_name, "QEMU binary", excluded)


def platform_of(qemu_path: str) -> str:
    """The emulated platform from the binary's name (qemu-kvm is x86_64)."""
    name = os.path.basename(qemu_path)
    if name == "qemu-kvm":
        return "x86_64"
    if name in ("qemu", "qemu.exe"):  # the old name of the PC emulator
        return "i386"
    for suffix in ("w.exe", ".exe"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    platform = name.removeprefix("qemu-system-")
    if platform not in PLATFORMS and platform.split("-")[0] in PLATFORMS:
        platform = platform.split("-")[0]  # a machine-specific build such as qemu-system-x86_64-microvm
    if platform not in PLATFORMS:
        raise EmulatorError(f"Platform {platform} is unknown")
    return platform


def qemu_img_for(qemu_path: str) -> str:
    """The qemu-img next to the Qemu binary (as installed together), else the one on PATH."""
    directory = Path(qemu_path).parent
    for candidate in sorted(directory.glob("qemu-img*")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("qemu-img")
    if found:
        return found
    raise EmulatorError(f"Could not find qemu-img in {directory} (Debian: apt-get install qemu-utils)")


def parse_version(output: str) -> str | None:
    match = VERSION_RE.search(output)
    return match.group(1) if match else None


def _version_key(path: str) -> tuple[str, float]:
    try:
        return path, os.stat(path).st_mtime
    except OSError:
        return path, 0.0


async def version_of(path: str, flag: str = "-version") -> str:
    """`<qemu> -version` / `<qemu-img> --version`, parsed; 409 when it cannot be read."""
    key = _version_key(path)
    if key in _versions:
        return _versions[key]
    try:
        proc = await asyncio.create_subprocess_exec(path, flag, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        raise EmulatorError(f"Could not determine the Qemu version for {path}: {exc}") from exc
    version = parse_version(out.decode(errors="replace"))
    if version is None:
        raise EmulatorError(f"Could not determine the Qemu version for {path}")
    _versions[key] = version
    return version


def version_of_sync(path: str, flag: str = "-version") -> str | None:
    """Blocking variant for `gns3server --list-plugins` (no event loop there)."""
    try:
        result = subprocess.run([path, flag], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(result.stdout.decode(errors="replace"))


def matching_archs(paths: list[Path], archs: list[str] | None) -> list[Path]:
    """The binaries of `GET /v1/qemu/binaries`: never a `-spice` build; with `archs`, those whose name ends with an
    asked architecture (`qemu-system-<arch>`, `<arch>.exe`, `<arch>w.exe`), once per matching architecture, as
    released GNS3 1.5.x lists them."""
    paths = [p for p in paths if not p.name.endswith("-spice")]
    if archs is None:
        return paths
    return [p for p in paths for arch in archs if p.name.endswith((arch, f"{arch}.exe", f"{arch}w.exe"))]


async def list_binaries(img: bool = False, excluded: Iterable[Path] = (),
                        archs: list[str] | None = None) -> list[dict[str, str]]:
    """`GET /v1/qemu/binaries` / `img-binaries`: every program found with its version."""
    paths = await asyncio.to_thread(find_programs, is_qemu_img_name if img else is_qemu_name, list(excluded))
    if not img:
        paths = matching_archs(paths, archs)
    flag = "--version" if img else "-version"
    versions = await asyncio.gather(*(version_of(str(p), flag) for p in paths))
    return [{"path": str(p), "version": v} for p, v in zip(paths, versions, strict=True)]


async def run_tool(argv: list[str], failure: str, timeout: float = 120) -> str:
    """Run a helper program (qemu-img) to completion; 409 with its own words when it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (OSError, TimeoutError) as exc:
        raise EmulatorError(f"{failure}: {exc}") from exc
    if proc.returncode != 0:
        words = (err or out).decode(errors="replace").strip()
        raise EmulatorError(f"{failure}: {words}")
    return out.decode(errors="replace")
