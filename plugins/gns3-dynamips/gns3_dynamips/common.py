"""What routers and devices share: finding the dynamips program, its working directory and NIOs inside it."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from gns3_dynamips.hypervisor import Hypervisor, quote
from gns3core.emulator.nio import (
    NIO,
    NIOTAP,
    NIOUDP,
    NIOUNIX,
    NIOVDE,
    NIOGenericEthernet,
    NIOLinuxEthernet,
    NIONull,
)
from gns3core.errors import EmulatorError
from gns3core.host_paths import host_file

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project
    from gns3core.server import Server

SECTION = "Dynamips"
SUPPORTED_NIOS = frozenset({
    "nio_udp", "nio_generic_ethernet", "nio_linux_ethernet", "nio_tap", "nio_unix", "nio_vde", "nio_null",
})


def find_dynamips(config: Config) -> str | None:
    """`[Dynamips] dynamips_path`, else `dynamips` on PATH; None when there is no usable program."""
    configured = config.section(SECTION).get("dynamips_path")
    candidate = os.path.expanduser(configured) if configured else shutil.which("dynamips")
    if not candidate:
        return None
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return None


def require_dynamips(config: Config) -> str:
    path = find_dynamips(config)
    if path is None:
        configured = config.section(SECTION).get("dynamips_path")
        where = f"'{configured}' is not an executable file" if configured else "'dynamips' is not on the PATH"
        raise EmulatorError(
            f"Dynamips is required but {where}. Install it (Debian: enable the non-free component and "
            "'apt-get install dynamips', see plugins/gns3-dynamips/install-dynamips.sh) "
            "or set [Dynamips] dynamips_path")
    return path


def working_dir(project: Project) -> Path:
    """Every router and device of a project shares `project-files/dynamips` (dynamips writes its files there)."""
    return project.module_dir("dynamips")


def checked_nio(server: Server, project: Project, nio: NIO) -> NIO:
    """UNIX socket and VDE files a NIO names stay inside the VM's (shared) directory, except on a local server: a
    client must not make dynamips create or connect to sockets anywhere on the host."""
    roots = [working_dir(project)]
    if isinstance(nio, NIOUNIX):
        host_file(server, nio.local_file, roots, "nio_unix local_file")
    elif isinstance(nio, NIOVDE):
        host_file(server, nio.control_file, roots, "nio_vde control_file")
        host_file(server, nio.local_file, roots, "nio_vde local_file")
    return nio


async def start_hypervisor(server: Server, project: Project, on_exit=None) -> Hypervisor:
    hypervisor = Hypervisor(require_dynamips(server.config), working_dir(project), server.host)
    await hypervisor.start(on_exit=on_exit)
    return hypervisor


def _tap_is_up(name: str) -> bool:
    import psutil

    stats = psutil.net_if_stats().get(name)
    return stats is not None and stats.isup


async def create_dynamips_nio(hypervisor: Hypervisor, nio: NIO) -> str:
    """Create the NIO inside dynamips under a fresh `<kind>-<uuid>` name and return that name."""
    kind = nio.type.removeprefix("nio_")
    name = f"{kind}-{uuid.uuid4()}"
    if isinstance(nio, NIOUDP):
        command = f"nio create_udp {name} {nio.lport} {nio.rhost} {nio.rport}"
    elif isinstance(nio, NIOLinuxEthernet):
        command = f"nio create_linux_eth {name} {nio.ethernet_device}"
    elif isinstance(nio, NIOGenericEthernet):
        command = f"nio create_gen_eth {name} {nio.ethernet_device}"
    elif isinstance(nio, NIOTAP):
        if not _tap_is_up(nio.tap_device):
            raise EmulatorError(f"TAP interface {nio.tap_device} is down")
        command = f"nio create_tap {name} {nio.tap_device}"
    elif isinstance(nio, NIOUNIX):
        command = f"nio create_unix {name} {nio.local_file} {nio.remote_file}"
    elif isinstance(nio, NIOVDE):
        command = f"nio create_vde {name} {nio.control_file} {nio.local_file}"
    elif isinstance(nio, NIONull):
        command = f"nio create_null {name}"
    else:
        raise EmulatorError(f"NIO of type {nio.type} is not supported")
    for part in command.split(" ")[3:]:
        if not part or any(c in part for c in '"\r\n\x00'):
            raise EmulatorError(f"Invalid NIO parameter {part[:100]!r}: spaces, quotes, NUL characters and line breaks "
                                "are not allowed")
    await hypervisor.send(command)
    return name


async def delete_dynamips_nio(hypervisor: Hypervisor, name: str, filtered: bool) -> None:
    if filtered:
        await hypervisor.send(f"nio unbind_filter {name} 2")
    await hypervisor.send(f"nio delete {name}")


def dlt_name(data_link_type: str) -> str:
    """`DLT_EN10MB` -> `en10mb`, as dynamips expects."""
    value = data_link_type.lower()
    value = value[4:] if value.startswith("dlt_") else value
    if not re.fullmatch(r"[a-z0-9_]+", value):
        raise EmulatorError(f"Invalid data link type {data_link_type!r}")
    return value


async def start_dynamips_capture(hypervisor: Hypervisor, nio_name: str, path: Path, data_link_type: str) -> None:
    await hypervisor.send(f"nio bind_filter {nio_name} 2 capture")
    try:
        await hypervisor.send(f"nio setup_filter {nio_name} 2 {dlt_name(data_link_type)} {quote(str(path))}")
    except EmulatorError:
        await hypervisor.send(f"nio unbind_filter {nio_name} 2")
        raise
