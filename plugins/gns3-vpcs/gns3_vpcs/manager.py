"""The VPCS manager: MAC offsets per project, the configured binary, and what `--list-plugins` shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from gns3_vpcs import program
from gns3_vpcs.console_probe import ConsoleProbe
from gns3_vpcs.vm import VPCSVM
from gns3core.emulator import VMManager
from gns3core.emulator.manager import ProgramStatus
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3core.config import Config
    from gns3core.projects import Project
    from gns3core.server import Server

MAC_POOL_SIZE = 255  # `-m` offsets 0..254: the last byte of 00:50:79:66:68:xx


class VPCSManager(VMManager):
    vm_class = VPCSVM
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp", "nio_tap"})
    legacy_directory = "pc-{id}"
    # vpcs 0.5b2 also binds UDP lport+9 (its relay): the core's allocator holds that port with every tunnel port.
    udp_companion_offsets: ClassVar[tuple[int, ...]] = (9,)

    def __init__(self, server: Server, kind: str) -> None:
        super().__init__(server, kind)
        self._macs: dict[str, set[int]] = {}
        self.console_probe = ConsoleProbe()

    def configured_path(self) -> str | None:
        return self.server.config.section("VPCS").get("vpcs_path")

    # -- MAC offsets -------------------------------------------------------------------------------------------------

    def allocate_mac(self, project: Project) -> int:
        used = self._macs.setdefault(project.id, set())
        for mac_id in range(MAC_POOL_SIZE):
            if mac_id not in used:
                used.add(mac_id)
                return mac_id
        raise Conflict(f"Cannot create a new VPCS VM (limit of {MAC_POOL_SIZE} VMs reached on this host)")

    def release_mac(self, project: Project, mac_id: int) -> None:
        used = self._macs.get(project.id)
        if used is not None:
            used.discard(mac_id)
            if not used:
                self._macs.pop(project.id, None)

    # -- VMs ---------------------------------------------------------------------------------------------------------

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> VPCSVM:
        """Create: a MAC offset, the console port, and `startup.vpc` only when a script is given."""
        mac_id = self.allocate_mac(project)
        try:
            vm = VPCSVM(self, project, vm_id, body["name"], body.get("console"), mac_id)
        except BaseException:
            self.release_mac(project, mac_id)
            raise
        script = body.get("startup_script")
        if script is not None:
            try:
                vm.write_script(script)
            except BaseException:
                await vm.close()
                raise
        return vm

    async def project_closed(self, project: Project) -> None:
        self._macs.pop(project.id, None)

    async def unload(self) -> None:
        await super().unload()
        self.console_probe.close()

    # -- the program -------------------------------------------------------------------------------------------------

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        try:
            path = program.resolve_path(config.section("VPCS").get("vpcs_path"))
        except EmulatorError as exc:
            return ProgramStatus(found=False, message=exc.message)
        version = program.detect_version_sync(path)
        if version is None:
            return ProgramStatus(found=True, path=path, message="could not determine its version (vpcs -v)")
        if not program.is_supported(version):
            return ProgramStatus(found=True, path=path, version=version,
                                 message="unsupported version: needs >= 0.8b or 0.5b2 to 0.6.1")
        return ProgramStatus(found=True, path=path, version=version)
