"""The VPCS manager: which backend runs new VMs, MAC offsets, the configured binary, what `--list-plugins` shows.

`[VPCS] backend` chooses how a VM runs: `vpcs` (the default) starts the real vpcs program for each VM, `builtin`
runs it as a virtual PC of the built-in engine (gns3_vpcs.engine). The choice is made when the VM is created; the
API, files and notifications are the same either way.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from gns3_vpcs import program
from gns3_vpcs.console_probe import ConsoleProbe
from gns3_vpcs.macs import MacPool, mac_address
from gns3_vpcs.vm import VPCSVM
from gns3core.emulator import VMManager
from gns3core.emulator.manager import ProgramStatus
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3_vpcs.engine.supervisor import EngineSupervisor
    from gns3core.config import Config
    from gns3core.projects import Project
    from gns3core.server import Server

BACKENDS = ("vpcs", "builtin")


class VPCSManager(VMManager):
    vm_class = VPCSVM
    supported_nios: ClassVar[frozenset[str]] = frozenset({"nio_udp", "nio_tap"})
    legacy_directory = "pc-{id}"
    # vpcs 0.5b2 also binds UDP lport+9 (its relay): the core's allocator holds that port with every tunnel port.
    udp_companion_offsets: ClassVar[tuple[int, ...]] = (9,)

    def __init__(self, server: Server, kind: str) -> None:
        super().__init__(server, kind)
        self.macs = MacPool()
        self.console_probe = ConsoleProbe()
        self._engine: EngineSupervisor | None = None

    def configured_path(self) -> str | None:
        return self.server.config.section("VPCS").get("vpcs_path")

    def backend(self) -> str:
        """`[VPCS] backend`: `vpcs` (the real program, default) or `builtin` (the built-in engine)."""
        return backend_of(self.server.config)

    @property
    def engine(self) -> EngineSupervisor:
        """The built-in engine's workers, started on the first built-in VM start."""
        if self._engine is None:
            from gns3_vpcs.engine.supervisor import EngineSupervisor

            self._engine = EngineSupervisor(self)
        return self._engine

    # -- MAC offsets -------------------------------------------------------------------------------------------------

    def allocate_mac(self, project: Project) -> int:
        return self.macs.allocate(project.id)

    def release_mac(self, project: Project, mac_id: int) -> None:
        self.macs.release(project.id, mac_id)

    def mac_address(self, mac_id: int) -> str:
        """The address a PC with this offset has on its link (`[Server] mac_base`; 409 when that is invalid)."""
        return mac_address(self.server.mac_base, mac_id)

    # -- VMs ---------------------------------------------------------------------------------------------------------

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> VPCSVM:
        """Create: a MAC offset, the console port, and `startup.vpc` only when a script is given."""
        vm_class: type[VPCSVM] = VPCSVM
        if self.backend() == "builtin":
            from gns3_vpcs.engine.vm import EngineVPCSVM

            vm_class = EngineVPCSVM
        mac_id = self.allocate_mac(project)
        try:
            vm = vm_class(self, project, vm_id, body["name"], body.get("console"), mac_id)
        except BaseException:
            self.release_mac(project, mac_id)
            raise
        script = body.get("startup_script")
        if script is not None:
            try:
                await asyncio.to_thread(vm.write_script, script)  # fsync: not on the event loop
            except BaseException:
                await vm.close()
                raise
        return vm

    async def project_closed(self, project: Project) -> None:
        self.macs.forget(project.id)

    async def unload(self) -> None:
        await super().unload()
        self.console_probe.close()
        if self._engine is not None:
            await self._engine.close()

    # -- the program -------------------------------------------------------------------------------------------------

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        try:
            backend = backend_of(config)
        except Conflict as exc:
            return ProgramStatus(found=False, message=exc.message)
        if backend == "builtin":
            return ProgramStatus(found=True, message="built-in engine ([VPCS] backend = builtin), no program needed")
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


def backend_of(config: Config) -> str:
    value = (config.section("VPCS").get("backend") or "vpcs").strip().lower()
    if value not in BACKENDS:
        raise Conflict(f"Invalid [VPCS] backend {value!r} in the server configuration: use vpcs or builtin")
    return value
