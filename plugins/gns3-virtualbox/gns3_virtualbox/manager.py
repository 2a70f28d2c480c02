"""The VirtualBox manager: the server's VBoxManage queue, VM creation (plain or linked clone) and project clean-up."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import TYPE_CHECKING, Any, ClassVar

from gns3_virtualbox import linked_clone
from gns3_virtualbox.vboxmanage import VBoxManage, find_program, program_version
from gns3_virtualbox.vm import VirtualBoxVM, check_vm_reference
from gns3core.emulator import VMManager
from gns3core.emulator.manager import ProgramStatus
from gns3core.emulator.vm import Adapter
from gns3core.errors import EmulatorError

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project
    from gns3core.server import Server

log = logging.getLogger(__name__)

SECTION = "VirtualBox"
STATE_CHECK_INTERVAL = 5.0
SETTINGS_AFTER_CREATE = ("headless", "acpi_shutdown", "use_any_adapter", "adapter_type")


class VirtualBoxManager(VMManager):
    vm_class = VirtualBoxVM
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp", "nio_nat"})

    def __init__(self, server: Server, kind: str) -> None:
        super().__init__(server, kind)
        self.vbox = VBoxManage(lambda: self.config.get("vboxmanage_path"))
        self._closing: set[str] = set()

    @property
    def config(self):
        return self.server.config.section(SECTION)

    def state_check_interval(self) -> float:
        """Seconds between two state checks of a running VM (`[VirtualBox] state_check_interval`)."""
        try:
            value = float(self.config.get("state_check_interval") or STATE_CHECK_INTERVAL)
        except ValueError:
            return STATE_CHECK_INTERVAL
        return max(0.2, value)

    def hardware_virtualization_taken(self) -> bool:
        """Whether a running VM of another emulator (Qemu with KVM, VMware) holds VT-x/AMD-V."""
        for manager in self.server.emulators.values():
            if manager is self:
                continue
            for vm in manager.vms.values():
                if getattr(vm, "hw_virtualization", False) and vm.status != "stopped":
                    return True
        return False

    # -- the program -------------------------------------------------------------------------------------------------

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        try:
            path = find_program(config.section(SECTION).get("vboxmanage_path"))
        except EmulatorError as exc:
            return ProgramStatus(found=False, message=exc.message)
        return ProgramStatus(found=True, path=path, version=program_version(path))

    async def list_vms(self) -> list[dict[str, Any]]:
        """The host's registered VMs with their RAM, without inaccessible ones and GNS3's own linked clones."""
        found = []
        for name, vm_uuid in await self.vbox.vm_list():
            if name == "<inaccessible>":
                continue
            mark = await self.vbox.run("getextradata", vm_uuid, linked_clone.CLONE_MARK)
            if mark.strip() == "Value: yes":
                continue
            memory = (await self.vbox.machine_info(vm_uuid)).get("memory", "0")
            found.append({"vmname": name, "ram": int(memory) if memory.isdigit() else 0})
        return found

    # -- VMs ---------------------------------------------------------------------------------------------------------

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> VirtualBoxVM:
        """Create: reopen the project's saved clone, make a new linked clone, or use the VM as it is."""
        vmname, name = body["vmname"], body["name"]
        check_vm_reference(vmname)
        vm = VirtualBoxVM(self, project, vm_id, name, body.get("console"), vmname=vmname,
                          linked_clone=body["linked_clone"])
        made_clone = False
        try:
            if vm.linked_clone and "vm_id" in body and await linked_clone.reopen(self.vbox, vmname, vm.vm_directory):
                vm.clone_registered = True
                await vm.load_machine()
            elif vm.linked_clone:
                base_info = await vm.load_machine()
                vm.check_adapter_count(body.get("adapters", 0))
                await linked_clone.create(self.vbox, vmname, base_info, name, vm.vm_directory)
                made_clone = vm.clone_registered = True
                vm.vmname = name
                await vm.load_machine()
            else:
                await vm.load_machine()
            vm.check_adapter_count(body.get("adapters", 0))
            vm.adapters = [Adapter() for _ in range(body.get("adapters", 0))]
            await vm.set_ram(body.get("ram", 0))
            for key in SETTINGS_AFTER_CREATE:
                if key in body:
                    await vm.update_field(key, body[key])
            await vm.set_remote_console(body.get("enable_remote_console", False))
        except BaseException:
            vm.clone_registered = False
            await vm.close()
            if made_clone:
                await self._discard_clone(vm)
            raise
        return vm

    async def _discard_clone(self, vm: VirtualBoxVM) -> None:
        """A create that failed after cloning leaves nothing behind: the clone and its directory go."""
        try:
            await self.vbox.run("unregistervm", vm.vmname, "--delete")
        except EmulatorError as exc:
            log.warning("Could not remove the linked clone %s: %s", vm.vmname, exc)
        await asyncio.to_thread(shutil.rmtree, vm.project.files_dir / self.kind / vm.id, True)

    async def reopen(self, vm: VirtualBoxVM, body: dict[str, Any]) -> None:  # type: ignore[override]
        """Create with a known id returns that VM with the rest of the body applied, as the reference did."""
        changes = {k: v for k, v in body.items() if k not in ("vm_id", "linked_clone", "vmname")}
        await vm.update(changes)

    # -- projects ----------------------------------------------------------------------------------------------------

    async def project_closing(self, project: Project) -> None:
        if self.vms_of(project):
            self._closing.add(project.id)

    async def project_closed(self, project: Project) -> None:
        """Forget the disks VirtualBox can no longer reach (clones of deleted projects), children first."""
        if project.id not in self._closing:
            return
        self._closing.discard(project.id)
        try:
            hdds = await self.vbox.hdds()
        except EmulatorError as exc:
            log.warning("Cannot list VirtualBox disks: %s", exc)
            return
        gone = [h for h in hdds if h.get("State") == "inaccessible" and h.get("Location")]
        parents = {h.get("Parent UUID") for h in gone}
        for disk in sorted(gone, key=lambda h: h.get("UUID") in parents):  # leaves first
            try:
                await self.vbox.run("closemedium", "disk", disk["Location"])
            except EmulatorError as exc:
                log.warning("Could not forget the VirtualBox disk %s: %s", disk["Location"], exc)
