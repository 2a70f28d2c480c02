"""Which vpcs binary runs, which version it is (asked once per binary) and the command line that version takes.

Debian ships vpcs 0.5b2; GNS3 1.5 knew 0.6.1 and 0.8+. All three take the same command line, except that `-R`
(disable the relay port) exists only from 0.8b on: 0.5b2 prints its usage and exits when given it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from gns3core.emulator.nio import NIO, NIOTAP, NIOUDP
from gns3core.errors import EmulatorError

DEFAULT_NAME = "vpcs"
VERSION_TIMEOUT = 5.0
SCRIPT_NAME = "startup.vpc"
_VERSION_RE = re.compile(rb"Welcome to Virtual PC Simulator, version ([0-9a-z.]+)")
_PART_RE = re.compile(r"^(\d*)([a-z]*)(\d*)$")

# Detected versions, keyed by the binary's path and identity on disk (a replaced binary is asked again).
_versions: dict[tuple[str, int, int, int], str] = {}
_pending: dict[tuple[int, tuple[str, int, int, int]], asyncio.Task[str | None]] = {}


# -- versions ----------------------------------------------------------------------------------------------------------


def version_key(version: str) -> tuple[tuple[int, int, str, int], ...]:
    """Sortable form of a vpcs version: `0.8b` < `0.8` < `0.8.3`, `0.5b2` < `0.6` < `0.6.1`."""
    parts = []
    for part in version.split("."):
        match = _PART_RE.match(part)
        if match is None:
            parts.append((0, 0, part, 0))
            continue
        number, letters, tail = match.groups()
        parts.append((int(number or 0), 0 if letters else 1, letters, int(tail or 0)))
    while len(parts) < 4:
        parts.append((0, 1, "", 0))
    return tuple(parts)


def is_supported(version: str) -> bool:
    """0.5b2 up to 0.6.1 (Debian's and GNS3 1.3's) and 0.8b or newer (GNS3 1.5's); 0.7 never took `-F`."""
    key = version_key(version)
    return version_key("0.5b2") <= key <= version_key("0.6.1") or key >= version_key("0.8b")


def takes_relay_flag(version: str) -> bool:
    """`-R` (no relay port) exists from 0.8b on."""
    return version_key(version) >= version_key("0.8b")


def parse_version(output: bytes) -> str | None:
    match = _VERSION_RE.search(output)
    return match.group(1).decode("ascii") if match else None


def check_version(path: str, version: str | None) -> str:
    if version is None:
        raise EmulatorError(f"Could not determine the VPCS version for {path}")
    if not is_supported(version):
        raise EmulatorError(
            f"VPCS executable version must be >= 0.8b or between 0.5b2 and 0.6.1; {path} is version {version}"
        )
    return version


def _identity(path: str) -> tuple[str, int, int, int]:
    st = os.stat(path)
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


async def detect_version(path: str, cwd: str | None = None) -> str:
    """The version of the binary at `path`, asking `vpcs -v` only the first time (concurrent callers share it)."""
    try:
        key = _identity(path)
    except OSError as exc:
        raise EmulatorError(f"VPCS program '{path}' is not accessible: {exc.strerror or exc}") from exc
    known = _versions.get(key)
    if known is not None:
        return check_version(path, known)
    loop = asyncio.get_running_loop()
    pending_key = (id(loop), key)
    task = _pending.get(pending_key)
    if task is None:
        task = loop.create_task(_ask_version(path, cwd))
        _pending[pending_key] = task
        task.add_done_callback(lambda done: _finished(pending_key, done))
    version = await asyncio.shield(task)
    if version is not None:
        _versions[key] = version
    return check_version(path, version)


def _finished(pending_key: tuple[int, tuple[str, int, int, int]], task: asyncio.Task[str | None]) -> None:
    _pending.pop(pending_key, None)
    if not task.cancelled():
        task.exception()  # retrieved: a failure reaches every waiter, never "never retrieved" warnings


async def _ask_version(path: str, cwd: str | None) -> str | None:
    try:
        process = await asyncio.create_subprocess_exec(
            path, "-v", cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        raise EmulatorError(f"Could not run VPCS program '{path}': {exc.strerror or exc}") from exc
    try:
        output, _ = await asyncio.wait_for(process.communicate(), VERSION_TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise EmulatorError(f"Could not determine the VPCS version for {path}: `{path} -v` did not finish "
                            f"within {VERSION_TIMEOUT:.0f} s") from exc
    return parse_version(output)


def detect_version_sync(path: str) -> str | None:
    """Blocking variant for `gns3server --list-plugins` (shares the cache)."""
    try:
        key = _identity(path)
    except OSError:
        return None
    if key in _versions:
        return _versions[key]
    try:
        done = subprocess.run([path, "-v"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=VERSION_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = parse_version(done.stdout)
    if version is not None:
        _versions[key] = version
    return version


def forget_versions() -> None:
    """Tests and a changed configuration: ask every binary again."""
    _versions.clear()


# -- the binary --------------------------------------------------------------------------------------------------------


def resolve_path(configured: str | None) -> str:
    """The vpcs to run: `[VPCS] vpcs_path` (a path, or a name looked up on PATH), default `vpcs` on PATH."""
    if not configured:
        found = shutil.which(DEFAULT_NAME)
        if found is None:
            raise EmulatorError(
                "No path to a VPCS executable has been set: 'vpcs' is not on PATH "
                "(install it with `apt-get install vpcs` or set vpcs_path in the [VPCS] section)"
            )
        return found
    path = os.path.expanduser(configured)
    if os.sep not in path:
        found = shutil.which(path)
        if found is None:
            raise EmulatorError(f"VPCS program '{configured}' is not accessible: it is not on PATH")
        path = found
    if not os.path.isfile(path):
        raise EmulatorError(f"VPCS program '{path}' is not accessible")
    if not os.access(path, os.X_OK):
        raise EmulatorError(f"VPCS program '{path}' is not executable")
    return path


# -- the command line --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """Everything one start needs; `rhost` is the tunnel's remote host already resolved to an IPv4 address."""

    path: str
    version: str
    console: int
    mac_id: int
    nio: NIO
    rhost: str | None = None
    script: bool = False


def command_line(launch: Launch) -> list[str]:
    """`vpcs -p CONSOLE -m MAC -i 1 -F [-R] (-s LPORT -c RPORT -t RHOST | -e -d TAP) [startup.vpc]`.

    `-F` keeps vpcs in the foreground, so the process started is the one supervised (without it `-p` daemonises).
    """
    argv: list[str] = [launch.path, "-p", str(launch.console), "-m", str(launch.mac_id), "-i", "1", "-F"]
    if takes_relay_flag(launch.version):
        argv.append("-R")
    nio = launch.nio
    if isinstance(nio, NIOUDP):
        argv += ["-s", str(nio.lport), "-c", str(nio.rport), "-t", launch.rhost or nio.rhost]
    elif isinstance(nio, NIOTAP):
        argv += ["-e", "-d", nio.tap_device]
    else:  # pragma: no cover - the manager accepts only these two types
        raise EmulatorError(f"NIO of type {nio.type} is not supported")
    if launch.script:
        argv.append(SCRIPT_NAME)
    return argv


def describe(argv: Sequence[str]) -> str:
    return " ".join(argv)
