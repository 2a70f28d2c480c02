"""The VMware kind: vmrun for the whole server, the VMnet pool, the host's VMs, VMX path checks and linked clones."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gns3_vmware import clones, inventory
from gns3_vmware.vm import VMwareVM
from gns3_vmware.vmnet import DEFAULT_NETWORKING_FILE, VMnetPool, host_vmnets, read_configured_vmnets, vmnet_number
from gns3_vmware.vmrun import (
    Vmrun,
    check_product_version,
    find_product_program,
    find_vmrun,
    product_version,
    running_vmx_paths,
    same_file,
    vmrun_argv,
)
from gns3_vmware.vmx import VMXError, VMXFile
from gns3core.config import Config, Section
from gns3core.emulator.manager import ProgramStatus, VMManager
from gns3core.emulator.nio import NIO, NIOVMNET
from gns3core.errors import Conflict, EmulatorError
from gns3core.host_paths import host_file

if TYPE_CHECKING:
    from gns3core.projects import Project
    from gns3core.server import Server

log = logging.getLogger(__name__)

HOST_TYPE = re.compile(r"^[a-z0-9-]+$")
VMX_SIZE_LIMIT = 1024 * 1024  # VMX files are a few kilobytes; anything far bigger is not one


class VMwareManager(VMManager):
    vm_class = VMwareVM
    # nio_tap is the released 1.5.x addition (joined like nio_udp); nio_nat and nio_vmnet are VMware's own.
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp", "nio_tap", "nio_nat", "nio_vmnet"})

    def __init__(self, server: Server, kind: str) -> None:
        super().__init__(server, kind)
        self.vmrun_runner = Vmrun()

    # -- configuration ---------------------------------------------------------------------------------------------

    @property
    def config(self) -> Section:
        return self.server.config.section("VMware")

    @property
    def host_type(self) -> str:
        """`vmrun -T`: `fusion` on macOS, else `[VMware] host_type` (ws: Workstation, player: Player)."""
        if sys.platform == "darwin":
            return "fusion"
        value = (self.config.get("host_type") or "ws").strip().lower()
        if not HOST_TYPE.match(value):
            raise Conflict(f"[VMware] host_type {value!r} is not a vmrun host type (ws, player or fusion)")
        return value

    @property
    def vmnet_pool(self) -> VMnetPool:
        return VMnetPool(self.config.getint("vmnet_start_range", 2), self.config.getint("vmnet_end_range", 255))

    @property
    def networking_file(self) -> str:
        return os.path.expanduser(self.config.get("networking_path") or DEFAULT_NETWORKING_FILE)

    def vm_folders(self) -> list[Path]:
        """Where VMX files may come from on a server that is not local: `[VMware] vms_path` (one or more folders
        separated by the path separator), else VMware's default VM folder."""
        configured = self.config.get("vms_path")
        if configured:
            return [Path(os.path.expanduser(p)) for p in configured.split(os.pathsep) if p.strip()]
        return [inventory.default_vm_folder()]

    @staticmethod
    def pipe_path(vm_id: str) -> Path:
        """The UNIX socket VMware serves the VM's first serial port on."""
        return Path(tempfile.gettempdir()) / "gns3_vmware" / vm_id

    def check_can_pause(self) -> None:
        if self.host_type != "ws":
            raise Conflict("Pausing a VM is only supported by VMware Workstation")

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        """vmrun and `vmware -v` (blocking, a few seconds at most)."""
        section = config.section("VMware")
        try:
            vmrun = find_vmrun(section.get("vmrun_path"))
        except Conflict as exc:
            return ProgramStatus(found=False, message=exc.message)
        program = find_product_program(vmrun)
        if program is None:
            return ProgramStatus(found=True, path=vmrun, message="vmrun found; vmware/vmplayer not found")
        try:
            out = subprocess.run([program, "-v"], capture_output=True, text=True, timeout=5, check=False).stdout
            version = check_product_version(out)
        except (OSError, subprocess.TimeoutExpired, Conflict) as exc:
            return ProgramStatus(found=True, path=vmrun, message=f"vmrun found; {exc}")
        return ProgramStatus(found=True, path=vmrun, version=version, message="vmrun found")

    # -- vmrun -----------------------------------------------------------------------------------------------------

    async def vmrun(self, subcommand: str, *args: str) -> str:
        """`vmrun -T <host type> <subcommand> <args...>` (one call at a time server-wide; 409 on failure)."""
        vmrun = find_vmrun(self.config.get("vmrun_path"))
        return await self.vmrun_runner.run(vmrun_argv(vmrun, self.host_type, subcommand, *args))

    async def is_running(self, vmx_path: str) -> bool:
        """Whether VMware runs this VMX now (`vmrun list`)."""
        return any(same_file(path, vmx_path) for path in running_vmx_paths(await self.vmrun("list")))

    # -- the host's VMs ------------------------------------------------------------------------------------------

    async def list_vms(self) -> list[dict[str, str]]:
        try:
            vmrun: str | None = find_vmrun(self.config.get("vmrun_path"))
        except Conflict:
            vmrun = None
        await product_version(vmrun)
        return await asyncio.to_thread(inventory.list_vms)

    async def check_vmx_path(self, path: str, name: str, vm_id: str, *, exclusive: bool = True,
                             other_than: VMwareVM | None = None) -> str:
        """A VMX file a VM may use: absolute, named .vmx, a VMware settings file, and on a server that is not local
        inside a VM folder or the projects directory (or registered in VMware's inventory); 409 otherwise.
        `exclusive`: the VM runs this very file, so no other node may (a linked clone runs its own copy)."""
        label = f'VMware VM "{name}" [{vm_id}]'
        if not os.path.isabs(path):
            raise Conflict(f'{label}: the VMX path "{path}" must be absolute')
        if not path.lower().endswith(".vmx"):
            raise Conflict(f'{label}: "{path}" is not a VMX file (its name must end with .vmx)')
        path = os.path.normpath(path)
        await asyncio.to_thread(self._check_vmx_file, path, label)
        for vm in self.vms.values() if exclusive else ():
            if vm is not other_than and isinstance(vm, VMwareVM) and same_file(vm.vmx_path, path):
                raise Conflict(f"{label}: the VM {path} is already used by VMware VM {vm.name} of this server; "
                               "use a linked clone to run it more than once")
        return path

    def _check_vmx_file(self, path: str, label: str) -> None:
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise Conflict(f'{label}: could not find VMX file "{path}"')
        if not any(same_file(real, registered) for registered in inventory.inventory_vmx_paths()):
            # Not one of VMware's registered VMs: the server's one host-path policy decides (anywhere on a local
            # server; elsewhere inside the VM folders, see [VMware] vms_path, or the projects directory).
            try:
                host_file(self.server, path, [*self.vm_folders(), self.server.projects.location], "VMX file")
            except EmulatorError as exc:
                raise Conflict(f"{label}: {exc.message}") from None
        try:
            if os.path.getsize(real) > VMX_SIZE_LIMIT:
                raise VMXError("too large")
            keys = VMXFile.read(real, limit=VMX_SIZE_LIMIT).items()
        except (OSError, VMXError):
            keys = {}
        if "config.version" not in keys and "virtualhw.version" not in keys:
            raise Conflict(f'{label}: "{path}" is not a VMware VMX file (it has no config.version or '
                           "virtualHW.version setting)")

    # -- VMs -------------------------------------------------------------------------------------------------------

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> VMwareVM:
        name = body["name"]
        linked = bool(body.get("linked_clone"))
        vmx_path = await self.check_vmx_path(body["vmx_path"], name, vm_id, exclusive=not linked)
        if linked and self.host_type == "player":
            raise Conflict("Linked clones are not supported by VMware Player")
        vm = VMwareVM(self, project, vm_id, name, body.get("console"), vmx_path=vmx_path, linked_clone=linked)
        try:
            rest = {k: v for k, v in body.items() if k not in ("name", "console", "vm_id", "vmx_path", "linked_clone")}
            await vm.update(rest)
            if linked:
                vm.vmx_path = await self.make_linked_clone(vm, vmx_path)
        except BaseException:
            await vm.close()
            raise
        return vm

    async def reopen(self, vm: VMwareVM, body: dict[str, Any]) -> None:  # type: ignore[override]
        """Create with a known id: the other fields apply to that VM (its VMX, a clone's own, stays)."""
        await vm.update({k: v for k, v in body.items() if k not in ("vm_id", "vmx_path", "linked_clone")})

    async def make_linked_clone(self, vm: VMwareVM, base_vmx: str) -> str:
        """The clone's VMX in the node's directory: made from the base snapshot (taken once), or reused if there."""
        directory = vm.vm_directory
        for existing in (directory / os.path.basename(base_vmx), directory / clones.clone_file_name(vm.name)):
            if existing.is_file():
                return str(existing)
        vmsd_path = clones.vmsd_path(base_vmx)
        vmsd = await asyncio.to_thread(_read_or_empty, vmsd_path)
        if clones.snapshot_prefix(vmsd) is None:
            log.info("VMware: taking the snapshot %r of %s", clones.BASE_SNAPSHOT, base_vmx)
            await self.vmrun("snapshot", base_vmx, clones.BASE_SNAPSHOT)
        clone = directory / clones.clone_file_name(vm.name)
        await self.vmrun("clone", base_vmx, str(clone), "linked", f"-snapshot={clones.BASE_SNAPSHOT}",
                         f"-cloneName={vm.name}")
        await asyncio.to_thread(_forget_clone_in_vmsd, vmsd_path)
        return str(clone)

    async def forget_clone(self, vmx_path: str) -> None:
        try:
            await asyncio.to_thread(inventory.forget_in_inventory, vmx_path)
        except Conflict as exc:
            log.warning("Could not remove %s from VMware's inventory: %s", vmx_path, exc)

    def create_nio(self, vm: Any, body: dict[str, Any]) -> NIO:
        nio = super().create_nio(vm, body)
        if isinstance(nio, NIOVMNET) and vmnet_number(nio.vmnet) is None:
            raise Conflict(f"{nio.vmnet!r} is not a VMnet interface name (vmnet<number>, e.g. vmnet12)")
        return nio

    # -- VMnets ----------------------------------------------------------------------------------------------------

    async def available_vmnets(self) -> set[int]:
        """VMware's configured VMnets and the host's vmnet<n> interfaces."""
        return await asyncio.to_thread(lambda: read_configured_vmnets(self.networking_file) | host_vmnets())

    def vmnets_in_use(self) -> set[str]:
        used: set[str] = set()
        for vm in self.vms.values():
            if isinstance(vm, VMwareVM):
                used |= vm.vmnets_in_use()
        return used

    async def allocate_vmnet(self, vm: VMwareVM) -> str:
        """A free VMnet for the VM (`POST .../interfaces/vmnet`), held until the VM is closed."""
        available = await self.available_vmnets()
        pool = self.vmnet_pool
        free = pool.free(available, self.vmnets_in_use())
        if not free:
            raise pool.exhausted()
        vm.reserved_vmnets.append(free[0])
        return free[0]


def _read_or_empty(path: Path) -> VMXFile:
    try:
        return VMXFile.read(path)
    except VMXError:
        return VMXFile([])


def _forget_clone_in_vmsd(vmsd_path: Path) -> None:
    try:
        vmsd = VMXFile.read(vmsd_path)
    except VMXError as exc:
        raise Conflict(f"Could not read the VMware snapshot file of the linked clone's base: {exc}") from None
    prefix = clones.snapshot_prefix(vmsd)
    if prefix is None:
        raise Conflict(f'Could not find the snapshot "{clones.BASE_SNAPSHOT}" in {vmsd_path}')
    before = vmsd.to_bytes()
    clones.forget_clones(vmsd, prefix)
    if vmsd.to_bytes() != before:
        vmsd.write(vmsd_path)
