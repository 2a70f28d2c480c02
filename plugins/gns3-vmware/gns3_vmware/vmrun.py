"""VMware's command-line programs: `vmrun` (start, stop, snapshots, clones) and `vmware -v` (the product version).

Both are found on the host (the configured `[VMware] vmrun_path`, else on PATH; `vmware`/`vmplayer` beside vmrun,
else on PATH), never taken from a request. Every call is an argument list. vmrun calls run one at a time across the
whole server, as VMware's VIX layer does not cope with concurrent calls, and each may take up to 120 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from pathlib import Path

from gns3core.errors import Conflict, EmulatorError

log = logging.getLogger(__name__)

VMRUN_TIMEOUT = 120.0
VERSION_TIMEOUT = 30.0
VMRUN_NAMES = ("vmrun", "vmrun.exe")
PRODUCT_PROGRAMS = ("vmware", "vmplayer")
WORKSTATION = re.compile(r"VMware Workstation (\d+)\.")
PLAYER = re.compile(r"VMware Player (\d+)\.")
MIN_WORKSTATION = 10
MIN_PLAYER = 6


def find_vmrun(configured: str | None) -> str:
    """The vmrun program to use; 409 with what to do when there is none."""
    if configured:
        path = os.path.expanduser(configured)
        if os.path.basename(path) not in VMRUN_NAMES:
            raise Conflict(f"[VMware] vmrun_path {configured} is not the vmrun program (its file name must be vmrun)")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise Conflict(f"vmrun {path} does not exist or is not executable: check [VMware] vmrun_path")
        return path
    found = shutil.which("vmrun")
    if found is None:
        raise Conflict("vmrun is not installed: VMware Workstation or Player (with its VIX API) must be installed on "
                       "the server's host, or [VMware] vmrun_path must name vmrun")
    return found


def vmrun_argv(vmrun: str, host_type: str, subcommand: str, *args: str) -> list[str]:
    """`vmrun -T <host type> <subcommand> [<vmx>] <args...>` as an argument list."""
    return [vmrun, "-T", host_type, subcommand, *args]


def running_vmx_paths(list_output: str) -> list[str]:
    """The VMX paths of `vmrun list` (its first line counts them)."""
    return [line.strip() for line in list_output.splitlines()[1:] if line.strip()]


def same_file(a: str, b: str) -> bool:
    if os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class Vmrun:
    """Runs vmrun for one server: one call at a time, 120 s each, a failure is a 409 with vmrun's own words."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    async def run(self, argv: list[str], timeout: float = VMRUN_TIMEOUT) -> str:
        async with self.lock:
            return await self._run(argv, timeout)

    async def _run(self, argv: list[str], timeout: float) -> str:
        log.debug("vmrun: %s", argv)
        try:
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise EmulatorError(f"Could not run vmrun ({argv[0]}): {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise EmulatorError(f"vmrun has timed out after {timeout:.0f} seconds!") from None
        stdout = out.decode("utf-8", errors="replace").strip()
        if proc.returncode != 0:
            message = stdout or err.decode("utf-8", errors="replace").strip() or f"exit status {proc.returncode}"
            raise EmulatorError(f"vmrun has returned an error: {message}")
        return stdout


def find_product_program(vmrun: str | None) -> str | None:
    """`vmware` (Workstation) or `vmplayer` (Player): beside vmrun first, else on PATH."""
    for name in PRODUCT_PROGRAMS:
        if vmrun:
            beside = Path(vmrun).with_name(name)
            if beside.is_file() and os.access(beside, os.X_OK):
                return str(beside)
        found = shutil.which(name)
        if found:
            return found
    return None


def check_product_version(output: str) -> str:
    """The product and version that `vmware -v` printed, checked against what the server supports (409 if not)."""
    match = WORKSTATION.search(output)
    if match:
        if int(match.group(1)) < MIN_WORKSTATION:
            raise Conflict(f"Using VMware Workstation requires version {MIN_WORKSTATION} or above "
                           f"(found version {match.group(1)})")
        return output.strip()
    match = PLAYER.search(output)
    if match:
        if int(match.group(1)) < MIN_PLAYER:
            raise Conflict(f"Using VMware Player requires version {MIN_PLAYER} or above "
                           f"(found version {match.group(1)})")
        return output.strip()
    raise Conflict(f"Could not determine the VMware version from: {output.strip()[:200] or '(no output)'}")


async def product_version(vmrun: str | None) -> str:
    """Run `vmware -v` (or `vmplayer -v`) and check the version; 409 when VMware is missing or too old."""
    program = find_product_program(vmrun)
    if program is None:
        raise Conflict("VMware is not installed: neither vmware nor vmplayer was found beside vmrun or on PATH "
                       "(install VMware Workstation 10 or later, or VMware Player 6 or later)")
    try:
        proc = await asyncio.create_subprocess_exec(program, "-v", stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise Conflict(f"Could not run {program} -v: {exc.strerror or exc}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise Conflict(f"{program} -v did not answer within {VERSION_TIMEOUT:.0f} seconds") from None
    return check_product_version(out.decode("utf-8", errors="replace"))
