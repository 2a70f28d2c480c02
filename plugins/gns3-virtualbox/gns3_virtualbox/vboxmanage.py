"""VBoxManage: where it is, how it is run, and what its answers mean.

The program comes from the configuration (`[VirtualBox] vboxmanage_path`) or PATH, never from a request. Every call
is an argument list (`VBoxManage --nologo <subcommand> <args...>`), and only one runs at a time on the whole server:
VirtualBox's own service copes badly with concurrent sessions on one machine. A call that runs longer than 60 s is
killed. A non-zero exit is a 409 carrying what VBoxManage printed on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable

from gns3core.errors import Conflict, EmulatorError

log = logging.getLogger(__name__)

PROGRAM_NAMES = ("VBoxManage", "VBoxManage.exe", "vboxmanage")
CALL_TIMEOUT = 60.0
MIN_API_VERSION = (4, 3)
NOT_INSTALLED = ("VBoxManage was not found: VirtualBox is not installed on this server. Install VirtualBox, or set "
                 "[VirtualBox] vboxmanage_path in the server configuration")


class VBoxManageError(EmulatorError):
    """VBoxManage ran and refused (non-zero exit); `stderr` is what it said."""

    def __init__(self, stderr: str) -> None:
        super().__init__(f"VirtualBox has returned an error: {stderr}")
        self.stderr = stderr


def find_program(configured: str | None) -> str:
    """The VBoxManage to run: the configured one (a bare name is looked up on PATH), else `vboxmanage` or
    `VBoxManage` on PATH. 409 with what to do when there is none or it is not VBoxManage."""
    if configured:
        expanded = os.path.expanduser(configured)
        path = expanded if os.sep in expanded else shutil.which(expanded)
        if path is None or not os.path.isfile(path):
            raise EmulatorError(f"VBoxManage {configured} ([VirtualBox] vboxmanage_path) does not exist")
    else:
        path = shutil.which("vboxmanage") or shutil.which("VBoxManage")
        if path is None:
            raise EmulatorError(NOT_INSTALLED)
    name = os.path.basename(path)
    if name not in PROGRAM_NAMES:
        raise EmulatorError(f"Invalid VBoxManage executable name {name}: it must be one of {', '.join(PROGRAM_NAMES)}")
    if not os.access(path, os.X_OK):
        raise EmulatorError(f"VBoxManage {path} is not executable")
    return path


def program_version(path: str) -> str | None:
    """`VBoxManage --version`, for `gns3server --list-plugins` (synchronous: not used on the event loop)."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


# -- answers -----------------------------------------------------------------------------------------------------------

def parse_machine_readable(text: str) -> dict[str, str]:
    """`showvminfo --machinereadable`: `key="value"` lines; keys of storage slots are quoted too
    (`"SATA-0-0"="/path/disk.vdi"`)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith('"'):
            end = line.find('"', 1)
            if end < 0 or line[end + 1:end + 2] != "=":
                continue
            key, value = line[1:end], line[end + 2:]
        else:
            key, equals, value = line.partition("=")
            if not equals:
                continue
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        info[key.strip()] = value
    return info


_VM_LINE = re.compile(r'^"(?P<name>.*)" \{(?P<uuid>[0-9a-fA-F-]+)\}$')


def parse_vm_list(text: str) -> list[tuple[str, str]]:
    """`list vms`: (name, uuid) per line `"name" {uuid}`."""
    return [(m["name"], m["uuid"]) for line in text.splitlines() if (m := _VM_LINE.match(line.strip()))]


def parse_blocks(text: str) -> list[dict[str, str]]:
    """`list hdds`: blocks of `Key: value` lines separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, colon, value = line.partition(":")
        if colon:
            current[key.strip()] = value.strip()
    return blocks


def parse_properties(text: str) -> dict[str, str]:
    """`list systemproperties`: `Key: value` lines."""
    return parse_blocks(text)[0] if text.strip() else {}


def parse_api_version(text: str) -> tuple[int, ...] | None:
    """`4_3` (or `7_0`, `5_2_x`) to a tuple; None when unreadable."""
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers[:2]) if numbers else None


# -- running it --------------------------------------------------------------------------------------------------------

class VBoxManage:
    """The server's one VBoxManage queue. `configured()` gives `[VirtualBox] vboxmanage_path` (re-read per call)."""

    def __init__(self, configured: Callable[[], str | None]) -> None:
        self.configured = configured
        self.timeout = CALL_TIMEOUT
        self._lock = asyncio.Lock()
        self._api_checked = False
        self.system_properties: dict[str, str] = {}

    async def run(self, *args: str) -> str:
        """Run one call after the ones already queued; its standard output. The API version is checked first,
        once, at the first call."""
        for arg in args:
            if "\x00" in arg:
                raise Conflict("A value sent to VBoxManage contains a NUL character")
        async with self._lock:
            if not self._api_checked:
                await self._check_api_version()
            return await self._execute(args)

    async def _check_api_version(self) -> None:
        self.system_properties = parse_properties(await self._execute(("list", "systemproperties")))
        raw = self.system_properties.get("API version", "")
        version = parse_api_version(raw)
        if version is None:
            raise EmulatorError(f"Cannot read the VirtualBox API version from VBoxManage (got {raw!r})")
        if version < MIN_API_VERSION:
            raise EmulatorError(f"The VirtualBox API version is lower than 4.3 (it is {raw}): install VirtualBox "
                                "4.3 or later")
        self._api_checked = True

    async def _execute(self, args: tuple[str, ...]) -> str:
        path = find_program(self.configured())
        argv = [path, "--nologo", *args]
        log.debug("VBoxManage: %s", argv[1:])
        try:
            process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                           stdout=asyncio.subprocess.PIPE,
                                                           stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise EmulatorError(f"Could not run VBoxManage ({path}): {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            await _end(process)
            raise EmulatorError(f"VBoxManage has timed out after {self.timeout:g} seconds!") from None
        except asyncio.CancelledError:
            await asyncio.shield(_end(process))
            raise
        if process.returncode != 0:
            message = err.decode("utf-8", errors="replace").strip() or out.decode("utf-8", errors="replace").strip()
            raise VBoxManageError(message or f"VBoxManage exited with code {process.returncode}")
        return out.decode("utf-8", errors="replace")

    # -- the questions the plugin asks -----------------------------------------------------------------------------

    async def machine_info(self, vm: str) -> dict[str, str]:
        return parse_machine_readable(await self.run("showvminfo", vm, "--machinereadable"))

    async def vm_list(self) -> list[tuple[str, str]]:
        return parse_vm_list(await self.run("list", "vms"))

    async def hdds(self) -> list[dict[str, str]]:
        return parse_blocks(await self.run("list", "hdds"))

    async def max_adapters(self, info: dict[str, str]) -> int:
        """How many network adapters the VM's chipset has: ICH9 as VirtualBox reports it, 8 otherwise."""
        if info.get("chipset") == "ich9":
            if not self.system_properties:
                self.system_properties = parse_properties(await self.run("list", "systemproperties"))
            value = self.system_properties.get("Maximum ICH9 Network Adapter count", "")
            return int(value) if value.isdigit() else 36
        return 8


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass
    await process.wait()
