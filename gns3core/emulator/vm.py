"""The base of every emulated node: identity, console port, adapters with their NIOs, status and events."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3core.emulator.nio import NIO, NIOUDP
from gns3core.errors import Conflict

if TYPE_CHECKING:
    from gns3core.emulator.links import LinkWiring
    from gns3core.emulator.manager import VMManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)


@dataclass
class Adapter:
    """A network adapter with a fixed number of ports; each port holds at most one NIO."""

    port_count: int = 1
    ports: dict[int, NIO] = field(default_factory=dict)


class BaseVM:
    """What every emulator's VM shares. Subclasses implement start/stop (and more) and `as_json`.

    `process_name` names the emulator in `log.error` messages (e.g. "VPCS" gives "VPCS process has stopped").
    """

    process_name = "Emulator"
    allocate_console = True  # Docker containers have none at creation
    # Set by plugins whose ports are joined to their NIOs by the core's data plane (see gns3core.emulator.links):
    # NIO changes and captures then go through it.
    links: LinkWiring | None = None

    def __init__(self, manager: VMManager, project: Project, vm_id: str, name: str, console: int | None = None):
        self.manager = manager
        self.server = manager.server
        self.project = project
        self.id = vm_id
        self._name = name
        self.status = "stopped"
        self.adapters: list[Adapter] = [Adapter()]
        self.console: int | None = None
        self.closed = False
        if self.allocate_console:
            self.console = self._reserve_console(console)

    # -- identity --------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def module_name(self) -> str:
        return self.manager.kind

    @property
    def vm_directory(self) -> Path:
        """Working directory of this VM inside the project, created on first use."""
        path = self.project.module_dir(self.module_name) / self.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def as_json(self) -> dict[str, Any]:
        """The VM object of the API; subclasses extend or replace it to match their output schema."""
        return {
            "name": self.name,
            "vm_id": self.id,
            "project_id": self.project.id,
            "console": self.console,
            "status": self.status,
        }

    # -- console ---------------------------------------------------------------------------------------------------

    def _reserve_console(self, requested: int | None, port_range=None) -> int:
        ports = self.server.ports
        if requested is None:
            return ports.get_free_tcp_port(self.project.id, port_range)
        return ports.reserve_tcp_port(requested, self.project.id, port_range, warn=self.project.warn)

    def change_console(self, requested: int | None) -> None:
        """Move the console to another port (released first, so asking for the current port keeps it)."""
        if requested == self.console:
            return
        self.server.ports.release_tcp_port(self.console, self.project.id)
        self.console = self._reserve_console(requested)

    # -- updates ---------------------------------------------------------------------------------------------------

    async def update(self, changes: dict[str, Any]) -> None:
        """Apply the keys of a PUT whose value differs, in request order. Subclasses handle their own keys."""
        for key, value in changes.items():
            if key == "name":
                if value is not None and value != self.name:  # a null name keeps the current one
                    self.name = value
            elif key == "console":
                if value != self.console:
                    self.change_console(value)
            else:
                await self.update_field(key, value)

    async def update_field(self, key: str, value: Any) -> None:
        """Hook for emulator-specific fields of a PUT."""
        if hasattr(self, key):
            setattr(self, key, value)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        raise Conflict(f"Starting is not supported by {self.manager.kind}")

    async def stop(self) -> None:
        raise Conflict(f"Stopping is not supported by {self.manager.kind}")

    async def reload(self) -> None:
        await self.stop()
        await self.start()

    async def suspend(self) -> None:
        raise Conflict(f"Suspend is not supported by {self.manager.kind}")

    async def resume(self) -> None:
        raise Conflict(f"Resume is not supported by {self.manager.kind}")

    @property
    def running(self) -> bool:
        return self.status == "started"

    async def close(self) -> None:
        """Stop the VM and give back its ports; the files stay until the project is committed or deleted."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.running:
                await self.stop()
        finally:
            if self.links is not None and self.links.active:
                await self.links.stop()
            self.server.ports.release_tcp_port(self.console, self.project.id)
            for adapter in self.adapters:
                for nio in adapter.ports.values():
                    self.release_nio(nio)
                adapter.ports.clear()

    def delete_files(self) -> None:
        """Commit after a delete: remove this VM's files (runs in a worker thread). Emulators sharing one
        directory per project override it to remove only their own files."""
        shutil.rmtree(self.project.files_dir / self.module_name / self.id, ignore_errors=True)

    def set_started(self) -> None:
        self.status = "started"
        self.project.emit("vm.started", self.as_json())

    def set_stopped(self) -> None:
        self.status = "stopped"
        self.project.emit("vm.stopped", self.as_json())

    def process_exited(self, returncode: int, output: str) -> None:
        """A supervised process ended on its own: report it, mark the VM stopped, keep the project intact.

        A non-zero return code is an error (`log.error`, as API v1 does); a clean exit nobody asked for is still
        worth a `log.warning`, since the node is gone all the same.
        """
        message = f"{self.process_name} process has stopped, return code: {returncode}\n{output}"
        if returncode != 0:
            log.error("%s %s: %s", self.manager.kind, self.name, message)
            self.project.emit("log.error", {"message": message})
        else:
            log.warning("%s %s: %s", self.manager.kind, self.name, message)
            self.project.warn(message)
        self.set_stopped()

    # -- NIOs ------------------------------------------------------------------------------------------------------

    def adapter(self, adapter_number: int) -> Adapter:
        if adapter_number >= len(self.adapters) or adapter_number < 0:
            raise Conflict(f"Adapter {adapter_number} doesn't exist on {self.manager.kind} VM {self.name}")
        return self.adapters[adapter_number]

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        adapter = self.adapter(adapter_number)
        if port_number >= adapter.port_count or port_number < 0:
            raise Conflict(f"Port {port_number} doesn't exist in adapter {adapter_number}")
        return adapter

    def get_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        return self.check_port(adapter_number, port_number).ports.get(port_number)

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        """Attach (or replace) the NIO of a port; with `links`, a running VM is wired at once (nothing changes when
        that fails). Other subclasses wire it into their running emulator and call super()."""
        adapter = self.check_port(adapter_number, port_number)
        old = adapter.ports.get(port_number)
        if old is not None and old is not nio and old.capturing and not nio.capturing and (
                self.links is None or self.links.bridged(nio)):
            nio.capture_file, nio.capture_dlt = old.capture_file, old.capture_dlt  # a capture outlives a re-link
        if self.links is not None:
            await self.links.nio_added(adapter_number, port_number, nio)
        if old is not None and old is not nio:
            self.release_nio(old, keep=nio)
        adapter.ports[port_number] = nio

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        """Detach a port's NIO (a port without one is fine) and release its tunnel port."""
        adapter = self.check_port(adapter_number, port_number)
        if self.links is not None:
            await self.links.nio_removed(adapter_number, port_number)
        nio = adapter.ports.pop(port_number, None)
        if nio is not None:
            self.release_nio(nio)
        return nio

    def release_nio(self, nio: NIO, keep: NIO | None = None) -> None:
        if isinstance(nio, NIOUDP) and not (isinstance(keep, NIOUDP) and keep.lport == nio.lport):
            self.server.ports.release_udp_port(nio.lport, self.project.id)

    async def start_capture(self, adapter_number: int, port_number: int, path: Path, data_link_type: str) -> None:
        """Capture a port to `path` (pcap); with `links` the port's bridge writes it."""
        if self.links is None:
            raise Conflict(f"Packet capture is not supported by {self.manager.kind}")
        self.check_port(adapter_number, port_number)
        await self.links.start_capture(adapter_number, port_number, path, data_link_type)

    async def stop_capture(self, adapter_number: int, port_number: int) -> None:
        if self.links is None:
            raise Conflict(f"Packet capture is not supported by {self.manager.kind}")
        self.check_port(adapter_number, port_number)
        await self.links.stop_capture(adapter_number, port_number)
