"""The IOU kind: its VMs, the server-wide pool of application ids, and what `--list-plugins` says about IOU here."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, ClassVar

from gns3_iou import files
from gns3_iou.vm import IOUVM
from gns3core.config import Section
from gns3core.dataplane import netio_directory
from gns3core.dataplane.netio import socket_in_use
from gns3core.emulator.manager import ProgramStatus, VMManager
from gns3core.errors import Conflict

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project

log = logging.getLogger(__name__)

FIRST_APPLICATION_ID = 1
LAST_APPLICATION_ID = 511  # ids 512 and up are the netio nodes facing the instances (id + 512)
LOADER_32BIT = "/lib/ld-linux.so.2"


class IOUManager(VMManager):
    vm_class: ClassVar[type[IOUVM]] = IOUVM
    supported_nios = frozenset({"nio_udp", "nio_tap", "nio_generic_ethernet"})

    def __init__(self, server: Any, kind: str) -> None:
        super().__init__(server, kind)
        self.application_ids: set[int] = set()

    @property
    def config(self) -> Section:
        return self.server.config.section("IOU")

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        loader = os.path.exists(LOADER_32BIT)
        message = ("32-bit programs can run; bring your IOU image and licence" if loader else
                   "no 32-bit loader (" + LOADER_32BIT + "): only static IOU images can run; see docs/iou.md")
        return ProgramStatus(found=True, message=message)

    # -- application ids ------------------------------------------------------------------------------------------

    def allocate_application_id(self) -> int:
        """The lowest id no VM of this server holds and no other program on this host is using."""
        directory = netio_directory()
        for appid in range(FIRST_APPLICATION_ID, LAST_APPLICATION_ID + 1):
            if appid in self.application_ids:
                continue
            if socket_in_use(directory / str(appid)) or socket_in_use(directory / str(files.peer_id(appid))):
                continue
            self.application_ids.add(appid)
            return appid
        raise Conflict("Cannot create a new IOU VM (limit of 512 VMs reached on this host)")

    def release_application_id(self, appid: int) -> None:
        self.application_ids.discard(appid)

    def replace_application_id(self, appid: int) -> int:
        new = self.allocate_application_id()
        self.release_application_id(appid)
        return new

    # -- VMs --------------------------------------------------------------------------------------------------------

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> IOUVM:
        vm = IOUVM(self, project, vm_id, body.get("name") or "", body.get("console"))
        rest = {k: v for k, v in body.items() if k not in ("name", "console", self.id_field)}
        vm.creating = True
        try:
            await vm.update(rest)
        except BaseException:
            await vm.close()
            raise
        finally:
            vm.creating = False
        return vm

    async def reopen(self, vm: Any, body: dict[str, Any]) -> None:
        """Create with a known id: API v1 applies the rest of the body to that VM."""
        rest = {k: v for k, v in body.items() if k not in (self.id_field,)}
        vm.creating = True
        try:
            await vm.update(rest)
        finally:
            vm.creating = False

    async def project_committed(self, project: Project) -> None:
        vms = [vm for vm in self.vms_of(project) if isinstance(vm, IOUVM)]
        results = await asyncio.gather(*(vm.save_configs() for vm in vms), return_exceptions=True)
        for vm, result in zip(vms, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("Could not save the configs of IOU %s: %s", vm.name, result)
