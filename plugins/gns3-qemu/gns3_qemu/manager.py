"""The Qemu manager: builds VMs from API bodies (binary first, then console type, then the rest)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from gns3_qemu import binaries
from gns3_qemu.vm import QemuVM
from gns3core.emulator import VMManager
from gns3core.emulator.manager import ProgramStatus

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project

# Create fields handled before the others, in this order; the remaining ones are applied like a PUT.
_CONSTRUCTION = ("vm_id", "name", "console", "qemu_path", "platform", "linked_clone", "console_type")


class QemuManager(VMManager):
    vm_class = QemuVM
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp", "nio_tap", "nio_nat"})
    legacy_directory = "vm-{id}"

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        found = binaries.find_programs(binaries.is_qemu_name)
        if not found:
            return ProgramStatus(found=False, message="no qemu-system-* on PATH (Debian: apt-get install "
                                                      "qemu-system-x86 qemu-utils)")
        versions = [binaries.version_of_sync(str(path)) for path in found]
        described = "; ".join(f"{p.name} {v or '(version unknown)'}" for p, v in zip(found, versions, strict=True))
        return ProgramStatus(found=True, path=str(found[0]), version=versions[0], message=described)

    def default_mac(self, vm_id: str) -> str:
        """The base MAC of a VM the client gives none: from the server's MAC base ([Server] mac_base), so servers
        sharing a lab never hand out the same one, and never one another Qemu VM of this server uses."""
        taken = {vm.mac_address for other_id, vm in self.vms.items() if other_id != vm_id}
        return self.server.mac_base.qemu(vm_id, taken)

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> QemuVM:
        vnc = body.get("console_type") == "vnc"
        # A VNC console port is reserved in the VNC range below; reserving it first in the telnet range would warn
        # about a replacement that never happens.
        vm = QemuVM(self, project, vm_id, body.get("name") or "", None if vnc else body.get("console"))
        try:
            await vm.select_binary(body.get("qemu_path"), body.get("platform"))
            vm.linked_clone = body.get("linked_clone", True)
            if vnc:
                requested = body.get("console")
                vm.change_console_type("vnc")
                if requested is not None:
                    vm.change_console(requested)
            await vm.update({k: v for k, v in body.items() if k not in _CONSTRUCTION})
        except Exception:
            await vm.close()
            raise
        return vm

    async def reopen(self, vm: QemuVM, body: dict[str, Any]) -> None:  # type: ignore[override]
        """Create with a known id returns that VM with the rest of the body applied, as API v1 does for Qemu."""
        await vm.update({k: v for k, v in body.items() if k not in ("vm_id", "linked_clone")})
