"""Managers of the two Dynamips collections: routers (`/dynamips/vms`) and devices (`/dynamips/devices`)."""

from __future__ import annotations

import glob
import logging
import os
from typing import TYPE_CHECKING, Any, ClassVar

from gns3_dynamips.builtin_switch import BUILTIN_DEVICES
from gns3_dynamips.common import SECTION, SUPPORTED_NIOS, checked_nio, find_dynamips, require_dynamips, working_dir
from gns3_dynamips.devices import DYNAMIPS_DEVICES, Device
from gns3_dynamips.platforms import PLATFORMS
from gns3_dynamips.router import Router
from gns3core.emulator import BaseVM, VMManager
from gns3core.emulator.manager import ProgramStatus
from gns3core.emulator.nio import NIO, nio_from_json
from gns3core.errors import Conflict

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project

log = logging.getLogger(__name__)

ROUTER_KIND = "dynamips"
DEVICE_KIND = "dynamips_devices"
SCRATCH_PATTERNS = ("*.ghost", "*_lock", "ilt_*", "c????_i*_rommon_vars", "c????_i*_log.txt")
BACKENDS = ("auto", "dynamips", "builtin")


def probe_dynamips(config: Config) -> ProgramStatus:
    path = find_dynamips(config)
    if path is None:
        return ProgramStatus(found=False, message="dynamips not found (Debian non-free package 'dynamips')")
    return ProgramStatus(found=True, path=path)


class DynamipsVMManager(VMManager):
    """Routers. Each router gets a dynamips id unique in its project and a hypervisor of its own."""

    vm_class = Router
    supported_nios = SUPPORTED_NIOS
    auto_idlepc_boot_wait: ClassVar[float] = 20.0
    auto_idlepc_sample_wait: ClassVar[float] = 3.0

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        return probe_dynamips(config)

    def create_nio(self, vm: BaseVM, body: dict[str, Any]) -> NIO:
        return checked_nio(self.server, vm.project, nio_from_json(body, self.supported_nios))

    def _free_dynamips_id(self, project: Project, requested: int | None) -> int:
        used = {vm.dynamips_id for vm in self.vms_of(project) if isinstance(vm, Router)}
        if requested is not None:
            if requested in used:
                raise Conflict(f"Dynamips identifier {requested} is already used by another router")
            return requested
        for candidate in range(1, 4097):
            if candidate not in used:
                return candidate
        raise Conflict("Maximum number of Dynamips instances reached (4096)")

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> BaseVM:
        platform = body["platform"]
        if platform not in PLATFORMS:
            raise Conflict(f"Unknown router platform: {platform}")
        chassis = body.get("chassis")
        info = PLATFORMS[platform]
        if chassis is not None:
            if not info.default_chassis:
                raise Conflict(f"{platform} routers do not have chassis")
            if platform != "c1700" and chassis not in info.chassis:
                raise Conflict(f"Unknown chassis {chassis} for {platform} routers")
        require_dynamips(self.server.config)
        dynamips_id = self._free_dynamips_id(project, body.get("dynamips_id"))
        router = Router(self, project, vm_id, body["name"], body.get("console"), platform=platform,
                        dynamips_id=dynamips_id, chassis=chassis, aux=body.get("aux"))
        try:
            await router.create()
            rest = {k: v for k, v in body.items()
                    if k not in ("name", "console", "aux", "vm_id", "platform", "chassis", "dynamips_id")}
            # npe and chassis decide the slots, so they go before the adapters.
            ordered = dict(sorted(rest.items(), key=lambda kv: 0 if kv[0] in ("npe", "midplane") else 1))
            await router.update(ordered)
        except Exception:
            await router.close()
            raise
        return router

    async def reopen(self, vm: BaseVM, body: dict[str, Any]) -> None:
        rest = {k: v for k, v in body.items() if k not in ("vm_id", "platform", "dynamips_id", "chassis")}
        await vm.update(rest)

    async def project_closed(self, project: Project) -> None:
        directory = project.files_dir / "dynamips"
        if not directory.is_dir():
            return
        for pattern in SCRATCH_PATTERNS:
            for path in glob.glob(os.path.join(glob.escape(str(directory)), pattern)):
                try:
                    os.remove(path)
                except OSError as exc:
                    log.debug("Could not remove %s: %s", path, exc)


class DynamipsDeviceManager(VMManager):
    """Switches, hubs, Frame-Relay and ATM switches; the Ethernet ones may run on the built-in switch."""

    vm_class = Device
    supported_nios = SUPPORTED_NIOS
    id_field = "device_id"
    noun = "Device"

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        status = probe_dynamips(config)
        if not status.found:
            return ProgramStatus(found=True, message="dynamips not found: Ethernet switches and hubs use the "
                                 "built-in switch; Frame-Relay and ATM switches are unavailable")
        return status

    def backend(self) -> str:
        """`[Dynamips] switch_backend`: auto (dynamips when installed), dynamips or builtin."""
        value = (self.server.config.section(SECTION).get("switch_backend") or "auto").strip().lower()
        if value not in BACKENDS:
            raise Conflict(f"Invalid [Dynamips] switch_backend {value!r}: use auto, dynamips or builtin")
        if value == "auto":
            return "dynamips" if find_dynamips(self.server.config) else "builtin"
        return value

    def device_class(self, device_type: str) -> type[Device]:
        if device_type not in DYNAMIPS_DEVICES:
            raise Conflict(f"Unknown device type: {device_type}")
        backend = self.backend()
        if device_type in BUILTIN_DEVICES and backend == "builtin":
            return BUILTIN_DEVICES[device_type]
        if find_dynamips(self.server.config) is None and device_type not in BUILTIN_DEVICES:
            what = "Frame-Relay" if device_type == "frame_relay_switch" else "ATM"
            raise Conflict(f"{what} switches need dynamips, which is not installed (Debian: enable non-free and "
                           "'apt-get install dynamips', or set [Dynamips] dynamips_path)")
        return DYNAMIPS_DEVICES[device_type]

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> BaseVM:
        cls = self.device_class(body["device_type"])
        device = cls(self, project, vm_id, body["name"])
        working_dir(project)
        try:
            await device.setup()
        except Exception:
            await device.close()
            raise
        return device

    def create_nio(self, vm: BaseVM, body: dict[str, Any]) -> NIO:
        return checked_nio(self.server, vm.project, nio_from_json(body.get("nio", body), self.supported_nios))
