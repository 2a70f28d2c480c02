"""Switch devices (Ethernet switch, hub, Frame-Relay and ATM switches): the API object and the dynamips backend.

Each device runs in its own dynamips hypervisor. The API-facing behaviour (ports, port settings, mappings,
capture rules, error texts) lives in `Device`, so the built-in backend (builtin_switch.py) behaves the same.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_dynamips.common import (
    create_dynamips_nio,
    delete_dynamips_nio,
    start_dynamips_capture,
    start_hypervisor,
    working_dir,
)
from gns3_dynamips.hypervisor import Hypervisor, HypervisorTimeout, parse_version, quote
from gns3core.emulator import Adapter, BaseVM
from gns3core.emulator.nio import NIO
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3core.emulator.manager import VMManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)

PORT_TYPES = ("access", "dot1q", "qinq")
ATTACH_TIMEOUT = 5.0  # dynamips answers an attach within its 20 ms receive poll; no answer by then is the deadlock
RECOVERY_ATTEMPTS = 3


class Device(BaseVM):
    """A device of `/dynamips/devices`: ports are any non-negative number, each holds at most one NIO."""

    allocate_console = False
    device_type = ""
    process_name = "Dynamips"

    def __init__(self, manager: VMManager, project: Project, device_id: str, name: str, console=None) -> None:
        super().__init__(manager, project, device_id, name)
        self.adapters = [Adapter(port_count=sys.maxsize)]

    @property
    def module_name(self) -> str:
        return "dynamips"

    @property
    def vm_directory(self) -> Path:
        return working_dir(self.project)

    @property
    def ports(self) -> dict[int, NIO]:
        return self.adapters[0].ports

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "device_id": self.id, "project_id": self.project.id}

    async def setup(self) -> None:
        """Create the device in its backend (called once, right after construction)."""

    # -- updates ---------------------------------------------------------------------------------------------------

    async def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "name" and value and value != self.name:
                await self.rename(value)
            elif key == "ports" and value is not None:
                for entry in value:
                    await self.apply_port_settings(entry["port"], entry)

    async def rename(self, new_name: str) -> None:
        self.name = new_name

    async def apply_port_settings(self, port: int, settings: dict[str, Any]) -> None:
        raise Conflict(f"Port settings are only meaningful for Ethernet switches, not for {self.name}")

    # -- ports -----------------------------------------------------------------------------------------------------

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        if port_number < 0:
            raise Conflict(f"Port {port_number} doesn't exist")
        return self.adapters[0]

    def allocated(self, port: int) -> NIO:
        nio = self.ports.get(port)
        if nio is None:
            raise Conflict(f"Port {port} is not allocated")
        return nio

    async def add_port_nio(self, port: int, nio: NIO, port_settings: dict[str, Any] | None = None,
                           mappings: dict[str, Any] | None = None) -> None:
        """Attach a NIO to a free port, then apply port settings (switch) or mappings (FR/ATM)."""
        if port in self.ports:
            raise Conflict(f"Port {port} isn't free")
        await self.attach(port, nio)
        self.ports[port] = nio
        if port_settings:
            await self.apply_port_settings(port, port_settings)
        elif mappings:
            await self.apply_mappings(mappings)

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        await self.add_port_nio(port_number, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        nio = self.allocated(port_number)
        try:
            await self.detach(port_number, nio)
        finally:
            self.ports.pop(port_number, None)
            self.release_nio(nio)
        return nio

    async def apply_mappings(self, mappings: dict[str, Any]) -> None:
        raise Conflict(f"Mappings are only meaningful for Frame-Relay and ATM switches, not for {self.name}")

    async def attach(self, port: int, nio: NIO) -> None:
        raise NotImplementedError

    async def detach(self, port: int, nio: NIO) -> None:
        raise NotImplementedError

    # -- capture ---------------------------------------------------------------------------------------------------

    async def start_capture(self, adapter_number: int, port_number: int, path: Path, data_link_type: str) -> None:
        nio = self.allocated(port_number)
        if nio.capturing:
            raise Conflict(f"Port {port_number} has already a filter applied on {self.name}")
        await self.begin_capture(port_number, nio, path, data_link_type)
        nio.capture_file = path
        nio.capture_dlt = data_link_type

    async def stop_capture(self, adapter_number: int, port_number: int) -> None:
        nio = self.allocated(port_number)
        if nio.capturing:
            await self.end_capture(port_number, nio)
        nio.capture_file = None
        nio.capture_dlt = None

    async def begin_capture(self, port: int, nio: NIO, path: Path, data_link_type: str) -> None:
        raise NotImplementedError

    async def end_capture(self, port: int, nio: NIO) -> None:
        raise NotImplementedError

    # -- close -----------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.shutdown()
        finally:
            for nio in self.ports.values():
                self.release_nio(nio)
            self.ports.clear()

    async def shutdown(self) -> None:
        """Free the backend resources (hypervisor process or sockets)."""


class SwitchPortSettings:
    """Port settings of an Ethernet switch as the API shows them."""

    @staticmethod
    def normalise(port: int, settings: dict[str, Any]) -> dict[str, Any]:
        port_type = settings.get("type")
        if port_type not in PORT_TYPES:
            raise Conflict(f"Unknown port type {port_type!r} for port {port}")
        vlan = settings.get("vlan")
        if not isinstance(vlan, int) or vlan < 1:
            raise Conflict(f"Invalid VLAN {vlan!r} for port {port}")
        ethertype = settings.get("ethertype") or ""
        if port_type != "qinq":
            ethertype = ""
        elif not ethertype:
            ethertype = "0x8100"
        return {"port": port, "type": port_type, "vlan": vlan, "ethertype": ethertype}


class EthernetSwitchMixin:
    """API view shared by both Ethernet switch backends."""

    settings: dict[int, dict[str, Any]]

    def switch_json(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, "ports": [self.settings[p] for p in sorted(self.settings)]}


# -- dynamips backend -----------------------------------------------------------------------------------------------


class DynamipsDevice(Device):
    """A device living in its own hypervisor; NIOs are created inside dynamips under generated names."""

    create_command = ""
    delete_command = ""
    rename_command = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hypervisor: Hypervisor | None = None
        self.nio_names: dict[int, str] = {}

    @property
    def hv(self) -> Hypervisor:
        if self.hypervisor is None:
            raise EmulatorError(f"Device {self.name} has no running hypervisor")
        return self.hypervisor

    async def setup(self) -> None:
        self.hypervisor = await start_hypervisor(self.server, self.project, on_exit=self._hypervisor_exited)
        try:
            await self.hypervisor.send(f"{self.create_command} {quote(self.name)}")
        except Exception:
            await self.hypervisor.stop()
            self.hypervisor = None
            raise

    def _hypervisor_exited(self, returncode: int, output: str) -> None:
        self._report("error", f"Dynamips hypervisor of device {self.name} has stopped, return code: {returncode}\n"
                              f"{output}")

    def _report(self, level: str, message: str) -> None:
        getattr(log, level)(message)
        self.project.emit(f"log.{level}", {"message": message})

    async def attach_command(self, command: str) -> None:
        """Send a command that puts a NIO in dynamips's receive loop (a port or a circuit), under a short limit.

        Dynamips 0.2.14 runs such a command holding the device's lock while it waits for the receive thread; if a
        frame for this device arrives on another port just then, that thread waits for the same lock and the
        hypervisor never answers again. The limit turns that into a HypervisorTimeout, which `recover` handles."""
        await self.hv.send(command, ATTACH_TIMEOUT)

    async def recover(self, cause: HypervisorTimeout, ports: dict[int, NIO]) -> None:
        """Replace a hypervisor that stopped answering with a new one holding the same device: its ports, port
        settings, circuits and captures. Frames arriving during the rebuild can wedge it again, hence a few tries;
        after the last one the device has no hypervisor and the request fails with what to do about it."""
        self._report("warning", f"The dynamips hypervisor of {self.name} stopped answering ({cause.command}): "
                                "dynamips deadlocks when frames reach a device while a port is attached to it. "
                                f"Restarting it with the device's {len(ports)} port(s).")
        for _ in range(RECOVERY_ATTEMPTS):
            await self.shutdown()
            self.hypervisor = await start_hypervisor(self.server, self.project, on_exit=self._hypervisor_exited)
            try:
                await self.hv.send(f"{self.create_command} {quote(self.name)}")
                await self.restore(ports)
                return
            except HypervisorTimeout:
                continue
        await self.shutdown()
        message = (f"The dynamips hypervisor of {self.name} stopped answering {RECOVERY_ATTEMPTS + 1} times in a row "
                   "while ports were attached (dynamips deadlocks when frames reach a device while a port is "
                   "attached to it). Delete and re-create the device with its nodes stopped, or use the built-in "
                   "switch ([Dynamips] switch_backend = builtin)")
        self._report("error", message)
        raise EmulatorError(message)

    async def restore(self, ports: dict[int, NIO]) -> None:
        """Give a fresh hypervisor the device's ports again, then what hangs on them."""
        for port, nio in sorted(ports.items()):
            name = await create_dynamips_nio(self.hv, nio)
            self.nio_names[port] = name
            await self.bind(port, name)
            await self.restore_port(port)
            if nio.capture_file is not None:
                await self.begin_capture(port, nio, keep_earlier_frames(nio.capture_file),
                                         nio.capture_dlt or "DLT_EN10MB")
        await self.restore_circuits()

    async def restore_port(self, port: int) -> None:
        """A port's settings, sent again as soon as it is back (before frames cross it in the wrong VLAN)."""

    async def restore_circuits(self) -> None:
        """Circuits between ports, created again once every port is back."""

    async def rename(self, new_name: str) -> None:
        quote(new_name)
        await self.hv.send(f"{self.rename_command} {quote(self.name)} {quote(new_name)}")
        self.name = new_name

    async def attach(self, port: int, nio: NIO) -> None:
        try:
            name = await create_dynamips_nio(self.hv, nio)
            try:
                await self.bind(port, name)
            except HypervisorTimeout:
                raise
            except EmulatorError:
                await delete_dynamips_nio(self.hv, name, False)
                raise
            self.nio_names[port] = name
        except HypervisorTimeout as exc:
            await self.recover(exc, {**self.ports, port: nio})

    async def bind(self, port: int, nio_name: str) -> None:
        """Attach a created NIO to the device object (switches and hubs only)."""

    async def unbind(self, port: int, nio_name: str) -> None:
        """Detach it before deletion."""

    async def detach(self, port: int, nio: NIO) -> None:
        name = self.nio_names[port]
        try:
            await self.unbind(port, name)
            await delete_dynamips_nio(self.hv, name, nio.capturing)
        finally:
            self.nio_names.pop(port, None)

    async def begin_capture(self, port: int, nio: NIO, path: Path, data_link_type: str) -> None:
        await start_dynamips_capture(self.hv, self.nio_names[port], path, data_link_type)

    async def end_capture(self, port: int, nio: NIO) -> None:
        await self.hv.send(f"nio unbind_filter {self.nio_names[port]} 2")

    async def shutdown(self) -> None:
        if self.hypervisor is None:
            return
        try:
            if self.hypervisor.running:
                try:
                    await self.hypervisor.send(f"{self.delete_command} {quote(self.name)}")
                except EmulatorError as exc:
                    log.debug("Deleting %s in dynamips: %s", self.name, exc)
        finally:
            await self.hypervisor.stop()
            self.hypervisor = None
            self.nio_names.clear()


class EthernetSwitch(EthernetSwitchMixin, DynamipsDevice):
    device_type = "ethernet_switch"
    create_command = "ethsw create"
    delete_command = "ethsw delete"
    rename_command = "ethsw rename"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings: dict[int, dict[str, Any]] = {}

    def as_json(self) -> dict[str, Any]:
        return self.switch_json(super().as_json())

    async def bind(self, port: int, nio_name: str) -> None:
        await self.attach_command(f"ethsw add_nio {quote(self.name)} {nio_name}")

    async def unbind(self, port: int, nio_name: str) -> None:
        self.settings.pop(port, None)
        await self.hv.send(f"ethsw remove_nio {quote(self.name)} {nio_name}")

    async def apply_port_settings(self, port: int, settings: dict[str, Any]) -> None:
        self.allocated(port)
        values = SwitchPortSettings.normalise(port, settings)
        await self.send_port_settings(port, values)
        self.settings[port] = values

    async def restore_port(self, port: int) -> None:
        if port in self.settings:
            await self.send_port_settings(port, self.settings[port])

    async def send_port_settings(self, port: int, values: dict[str, Any]) -> None:
        nio = self.nio_names[port]
        name = quote(self.name)
        if values["type"] == "access":
            await self.hv.send(f"ethsw set_access_port {name} {nio} {values['vlan']}")
        elif values["type"] == "dot1q":
            await self.hv.send(f"ethsw set_dot1q_port {name} {nio} {values['vlan']}")
        else:
            ethertype = values["ethertype"]
            if ethertype == "0x8100":
                await self.hv.send(f"ethsw set_qinq_port {name} {nio} {values['vlan']}")
            else:
                if parse_version(self.hv.version) < (0, 2, 16):
                    raise EmulatorError(
                        f"Dynamips {self.hv.version} cannot use ethertype {ethertype} on a QinQ port "
                        "(dynamips >= 0.2.16 is required; 0x8100 works with any version)")
                await self.hv.send(f"ethsw set_qinq_port {name} {nio} {values['vlan']} {ethertype}")


class EthernetHub(DynamipsDevice):
    device_type = "ethernet_hub"
    create_command = "nio_bridge create"
    delete_command = "nio_bridge delete"
    rename_command = "nio_bridge rename"

    async def bind(self, port: int, nio_name: str) -> None:
        await self.attach_command(f"nio_bridge add_nio {quote(self.name)} {nio_name}")

    async def unbind(self, port: int, nio_name: str) -> None:
        await self.hv.send(f"nio_bridge remove_nio {quote(self.name)} {nio_name}")


def keep_earlier_frames(path: Path) -> Path:
    """Dynamips truncates a capture file it opens: before a restarted hypervisor captures to `path` again, what was
    captured so far moves to `<name>-1.pcap` (the first number not taken), next to it."""
    number = 1
    while (earlier := path.with_name(f"{path.stem}-{number}{path.suffix}")).exists():
        number += 1
    try:
        path.rename(earlier)
    except FileNotFoundError:
        pass
    return path


def _parse_mapping_side(text: Any, parts: tuple[int, ...], error: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise Conflict(error)
    try:
        values = tuple(int(v) for v in text.split(":"))
    except ValueError as exc:
        raise Conflict(error) from exc
    if len(values) not in parts or any(v < 0 for v in values):
        raise Conflict(error)
    return values


def _tuple_text(values: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


class MappingSwitch(DynamipsDevice):
    """Frame-Relay and ATM switches: virtual circuits between ports, kept in both directions."""

    error_text = ""
    shapes: tuple[int, ...] = (2,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mappings: dict[tuple[int, ...], tuple[int, ...]] = {}

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        data["mappings"] = {_tuple_text(k): _tuple_text(v) for k, v in self.mappings.items()}
        return data

    async def apply_mappings(self, mappings: dict[str, Any]) -> None:
        if not isinstance(mappings, dict):
            raise Conflict(self.error_text)
        parsed = []
        for source, destination in mappings.items():
            src = _parse_mapping_side(source, self.shapes, self.error_text)
            dst = _parse_mapping_side(destination, self.shapes, self.error_text)
            if len(src) != len(dst):
                raise Conflict(self.error_text)
            parsed.append((src, dst))
        for src, dst in parsed:
            # The client re-sends every mapping with each NIO: create a circuit once both ends exist.
            if src[0] not in self.nio_names or dst[0] not in self.nio_names:
                continue
            if src in self.mappings or dst in self.mappings:
                continue
            self.mappings[src], self.mappings[dst] = dst, src  # known first: a rebuild creates it with the others
            try:
                try:
                    await self.create_circuit_pair(src, dst)
                except HypervisorTimeout as exc:
                    await self.recover(exc, dict(self.ports))
            except EmulatorError:
                self.mappings.pop(src, None)
                self.mappings.pop(dst, None)
                raise

    async def create_circuit_pair(self, src: tuple[int, ...], dst: tuple[int, ...]) -> None:
        """Both directions (dynamips creates one per command), or neither unless the hypervisor stopped answering."""
        await self.send_circuit("create", src, dst)
        try:
            await self.send_circuit("create", dst, src)
        except HypervisorTimeout:
            raise  # that hypervisor is replaced as a whole
        except EmulatorError:
            await self.send_circuit("delete", src, dst)
            raise

    async def restore_circuits(self) -> None:
        for src, dst in list(self.mappings.items()):
            await self.send_circuit("create", src, dst)

    async def send_circuit(self, action: str, src: tuple[int, ...], dst: tuple[int, ...]) -> None:
        raise NotImplementedError

    async def unbind(self, port: int, nio_name: str) -> None:
        for src, dst in list(self.mappings.items()):
            if src[0] == port and src in self.mappings:
                await self.send_circuit("delete", src, dst)
                await self.send_circuit("delete", dst, src)
                self.mappings.pop(src, None)
                self.mappings.pop(dst, None)


class FrameRelaySwitch(MappingSwitch):
    device_type = "frame_relay_switch"
    create_command = "frsw create"
    delete_command = "frsw delete"
    rename_command = "frsw rename"
    error_text = "Invalid Frame-Relay mappings"
    shapes = (2,)

    async def send_circuit(self, action: str, src: tuple[int, ...], dst: tuple[int, ...]) -> None:
        send = self.attach_command if action == "create" else self.hv.send
        await send(f"frsw {action}_vc {quote(self.name)} {self.nio_names[src[0]]} {src[1]} "
                   f"{self.nio_names[dst[0]]} {dst[1]}")


class ATMSwitch(MappingSwitch):
    device_type = "atm_switch"
    create_command = "atmsw create"
    delete_command = "atmsw delete"
    rename_command = "atmsw rename"  # the reference sent "atm rename", which dynamips rejects
    error_text = "Invalid ATM mappings"
    shapes = (2, 3)

    async def send_circuit(self, action: str, src: tuple[int, ...], dst: tuple[int, ...]) -> None:
        name = quote(self.name)
        nio1, nio2 = self.nio_names[src[0]], self.nio_names[dst[0]]
        send = self.attach_command if action == "create" else self.hv.send
        if len(src) == 2:
            await send(f"atmsw {action}_vpc {name} {nio1} {src[1]} {nio2} {dst[1]}")
        else:
            await send(f"atmsw {action}_vcc {name} {nio1} {src[1]} {src[2]} {nio2} {dst[1]} {dst[2]}")


DYNAMIPS_DEVICES: dict[str, type[DynamipsDevice]] = {
    cls.device_type: cls for cls in (EthernetSwitch, EthernetHub, FrameRelaySwitch, ATMSwitch)
}
