"""Entry point of the Qemu plugin (`gns3server.plugins` group, name `qemu`)."""

from __future__ import annotations

from gns3_qemu import schemas
from gns3_qemu.manager import QemuManager
from gns3_qemu.routes import global_routes
from gns3core import hookimpl
from gns3core.emulator import vm_routes
from gns3core.registry import Emulator

KIND = "qemu"


@hookimpl
def gns3_register(registry) -> None:
    """Declare the Qemu kind: the standard VM endpoints (no capture, as API v1) plus the image and binary routes."""
    routes = vm_routes(KIND, create=schemas.CREATE, update=schemas.UPDATE, output=schemas.OUTPUT,
                       actions=("start", "stop", "reload", "suspend", "resume"), start_returns_vm=True)
    registry.add_emulator(Emulator(name=KIND, manager=QemuManager, routes=routes + global_routes(),
                                   description="Qemu virtual machines (qemu-system-*)"))
