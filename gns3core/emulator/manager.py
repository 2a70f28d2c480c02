"""One manager per emulator kind: creates, finds and forgets that kind's VMs, and tidies up with projects."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gns3core.emulator.nio import NIO, nio_from_json
from gns3core.emulator.vm import BaseVM
from gns3core.errors import NotFound

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project
    from gns3core.server import Server

log = logging.getLogger(__name__)


@dataclass
class ProgramStatus:
    """What `gns3server --list-plugins` prints about an emulator's program."""

    found: bool
    path: str | None = None
    version: str | None = None
    message: str = ""


class VMManager:
    """Base manager. Subclasses set `vm_class`, `supported_nios` and, when needed, override `build_vm`.

    `id_field` is the JSON key and path parameter of the VM id (`vm_id`, `device_id` or `id`);
    `noun` is the word used in 404 messages ("VM", "Device", "Docker container").
    """

    vm_class: ClassVar[type[BaseVM]] = BaseVM
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp"})
    id_field: ClassVar[str] = "vm_id"
    noun: ClassVar[str] = "VM"
    legacy_directory: ClassVar[str | None] = None  # e.g. "pc-{id}": pre-1.3 directory of an integer VM id

    def __init__(self, server: Server, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.vms: dict[str, BaseVM] = {}

    # -- the program ---------------------------------------------------------------------------------------------

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        """Whether this emulator's program is installed, and its version. Cheap; called by --list-plugins."""
        return ProgramStatus(found=True, message="no external program needed")

    # -- VMs -----------------------------------------------------------------------------------------------------

    async def create_vm(self, project: Project, body: dict[str, Any]) -> BaseVM:
        """Create a VM from a validated request, or return the existing one when its id is already known."""
        requested = body.get(self.id_field)
        if isinstance(requested, str) and requested in self.vms:
            vm = self.vms[requested]
            if vm.project is not project:
                raise NotFound(f"Project ID {project.id} doesn't belong to {self.noun.lower()} {vm.name}")
            await self.reopen(vm, body)
            return vm
        if requested is None:
            vm_id = str(uuid.uuid4())
        elif isinstance(requested, int):
            vm_id = str(uuid.uuid4())
            self._adopt_legacy_directory(project, requested, vm_id)
        else:
            vm_id = requested
        vm = await self.build_vm(project, vm_id, body)
        self.vms[vm_id] = vm
        project.add_vm(vm)
        return vm

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> BaseVM:
        """Construct the VM; the default passes name and console, then applies the remaining fields as a PUT."""
        vm = self.vm_class(self, project, vm_id, body.get("name") or "", body.get("console"))
        rest = {k: v for k, v in body.items() if k not in ("name", "console", self.id_field)}
        if rest:
            try:
                await vm.update(rest)
            except Exception:
                await vm.close()
                raise
        return vm

    async def reopen(self, vm: BaseVM, body: dict[str, Any]) -> None:
        """Create with a known id: the reference returns that VM; subclasses may apply the body to it."""

    def _adopt_legacy_directory(self, project: Project, legacy_id: int, vm_id: str) -> None:
        if not self.legacy_directory:
            return
        old = project.module_dir(self.kind) / self.legacy_directory.format(id=legacy_id)
        if old.is_dir():
            try:
                shutil.move(str(old), str(project.module_dir(self.kind) / vm_id))
            except OSError as exc:
                log.warning("Could not move legacy directory %s: %s", old, exc)

    def get_vm(self, vm_id: str, project_id: str | None = None) -> BaseVM:
        """Find a VM; 404 with the reference's wording when it is unknown or belongs to another project."""
        vm = self.vms.get(vm_id)
        if vm is None:
            raise NotFound(f"{self.noun} ID {vm_id} doesn't exist")
        if project_id is not None and vm.project.id != project_id:
            raise NotFound(f"Project ID {project_id} doesn't belong to {self.noun.lower()} {vm.name}")
        return vm

    async def delete_vm(self, vm: BaseVM) -> None:
        """Close and forget the VM now; its directory goes at the next commit (or with the project)."""
        try:
            await vm.close()
        finally:
            self.vms.pop(vm.id, None)
            vm.project.remove_vm(vm, deleted=True)

    def create_nio(self, vm: BaseVM, body: dict[str, Any]) -> NIO:
        return nio_from_json(body, self.supported_nios)

    # -- projects ------------------------------------------------------------------------------------------------

    def vms_of(self, project: Project) -> list[BaseVM]:
        return [vm for vm in self.vms.values() if vm.project is project]

    async def project_closing(self, project: Project) -> None:
        """Called before the project's VMs are closed."""

    async def close_project_vms(self, project: Project) -> None:
        vms = self.vms_of(project)
        results = await asyncio.gather(*(vm.close() for vm in vms), return_exceptions=True)
        for vm, result in zip(vms, results, strict=True):
            if isinstance(result, BaseException):
                log.error("Could not close %s VM %s: %s", self.kind, vm.name, result)
            self.vms.pop(vm.id, None)

    async def project_closed(self, project: Project) -> None:
        """Called after the project's VMs are closed (scratch-file clean-up goes here)."""

    async def project_committed(self, project: Project) -> None:
        """Called on commit, after deleted VMs' directories are gone (save configs here)."""

    async def unload(self) -> None:
        """Server stopping: close every VM still open."""
        vms = list(self.vms.values())
        await asyncio.gather(*(vm.close() for vm in vms), return_exceptions=True)
        self.vms.clear()
