"""The built-in switch: Ethernet switch and hub devices run in Python when dynamips is not installed.

Why: a VPCS lab with a switch should work with nothing but vpcs installed. Each port is a UDP tunnel (a plain
asyncio datagram socket). The switch learns MAC addresses per VLAN and knows access, dot1q (802.1Q trunk with a
native VLAN) and qinq ports (the port's VLAN is pushed as an outer tag on trunks; customer tags travel inside).
The hub repeats every frame to every other port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gns3_dynamips.devices import Device, EthernetSwitchMixin, SwitchPortSettings
from gns3_dynamips.pcap import PcapFile
from gns3core.emulator.nio import NIO, NIOUDP, NIONull
from gns3core.errors import Conflict, EmulatorError
from gns3core.tunnels import local_address

log = logging.getLogger(__name__)

TPID_8021Q = 0x8100
MAC_AGING_LIMIT = 8192  # entries kept per switch before the table is cleared (a simple bound, not a timer)


@dataclass
class EnginePort:
    """One switch port: its socket, its mode and an optional capture."""

    number: int
    mode: str = "access"
    vlan: int = 1
    ethertype: int = TPID_8021Q
    transport: asyncio.DatagramTransport | None = None
    remote: tuple[str, int] | None = None
    capture: PcapFile | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})

    def send(self, frame: bytes) -> None:
        if self.capture is not None:
            self.capture.write(frame)
        if self.transport is not None and self.remote is not None:
            self.stats["out"] += 1
            self.transport.sendto(frame, self.remote)


class _PortProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: SwitchEngine, port: EnginePort) -> None:
        self.engine = engine
        self.port = port

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.engine.receive(self.port, data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" from a peer that is not up yet: frames are simply lost, as on a wire.
        log.debug("Built-in switch port %s: %s", self.port.number, exc)


def _tag(frame: bytes, vlan: int, tpid: int = TPID_8021Q) -> bytes:
    return frame[:12] + struct.pack("!HH", tpid, vlan & 0x0FFF) + frame[12:]


class SwitchEngine:
    """Forwarding for one device. `hub=True` floods everything; otherwise a VLAN-aware learning switch."""

    def __init__(self, hub: bool = False) -> None:
        self.hub = hub
        self.ports: dict[int, EnginePort] = {}
        self.mac_table: dict[tuple[int, bytes], int] = {}

    # -- ports -----------------------------------------------------------------------------------------------------

    async def add_udp_port(self, number: int, lport: int, rhost: str, rport: int,
                           udp_host: str | None = None) -> EnginePort:
        """A tunnel port bound on `udp_host` ([Server] udp_host) for the peer's address family; all addresses when
        None."""
        loop = asyncio.get_running_loop()
        port = EnginePort(number)
        try:
            infos = await loop.getaddrinfo(rhost, rport, type=socket.SOCK_DGRAM)
            family, _, _, _, address = infos[0]
            if udp_host is None:
                bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
            else:
                bind_host = local_address(udp_host, family, "The built-in switch")
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _PortProtocol(self, port), local_addr=(bind_host, lport), family=family)
        except OSError as exc:
            raise EmulatorError(f"Built-in switch: cannot open UDP port {lport} towards {rhost}:{rport}: "
                                f"{exc.strerror or exc}") from exc
        port.transport = transport  # type: ignore[assignment]
        port.remote = address[:2]
        self.ports[number] = port
        return port

    def add_null_port(self, number: int) -> EnginePort:
        port = EnginePort(number)
        self.ports[number] = port
        return port

    def set_mode(self, number: int, mode: str, vlan: int, ethertype: int = TPID_8021Q) -> None:
        port = self.ports[number]
        port.mode, port.vlan, port.ethertype = mode, vlan, ethertype
        self.flush_port(number)

    def flush_port(self, number: int) -> None:
        for key in [k for k, v in self.mac_table.items() if v == number]:
            del self.mac_table[key]

    def remove_port(self, number: int) -> None:
        port = self.ports.pop(number, None)
        if port is None:
            return
        self.flush_port(number)
        if port.transport is not None:
            port.transport.close()
        if port.capture is not None:
            port.capture.close()

    def start_capture(self, number: int, path: Path, data_link_type: str) -> None:
        self.ports[number].capture = PcapFile(path, data_link_type)

    def stop_capture(self, number: int) -> None:
        port = self.ports[number]
        if port.capture is not None:
            port.capture.close()
            port.capture = None

    def close(self) -> None:
        for number in list(self.ports):
            self.remove_port(number)
        self.mac_table.clear()

    # -- forwarding ------------------------------------------------------------------------------------------------

    def receive(self, port: EnginePort, frame: bytes) -> None:
        if len(frame) < 14:
            return
        port.stats["in"] += 1
        if port.capture is not None:
            port.capture.write(frame)
        if self.hub:
            for other in list(self.ports.values()):
                if other is not port:
                    other.send(frame)
            return
        vlan, payload = self.classify(port, frame)
        if vlan is None:
            return
        source, destination = payload[6:12], payload[0:6]
        if not source[0] & 1:
            if len(self.mac_table) >= MAC_AGING_LIMIT:
                self.mac_table.clear()
            self.mac_table[(vlan, source)] = port.number
        target = None if destination[0] & 1 else self.mac_table.get((vlan, destination))
        if target is not None:
            out = self.ports.get(target)
            if out is not None and out is not port:
                self.emit(out, vlan, payload)
            return
        for out in list(self.ports.values()):
            if out is not port:
                self.emit(out, vlan, payload)

    @staticmethod
    def classify(port: EnginePort, frame: bytes) -> tuple[int | None, bytes]:
        """The VLAN a frame belongs to and the frame without the tag that told us (if any)."""
        if port.mode == "dot1q":
            (tpid,) = struct.unpack_from("!H", frame, 12)
            if tpid == TPID_8021Q and len(frame) >= 18:
                (tci,) = struct.unpack_from("!H", frame, 14)
                return tci & 0x0FFF, frame[:12] + frame[16:]
            return port.vlan, frame
        if port.mode == "access":
            (tpid,) = struct.unpack_from("!H", frame, 12)
            if tpid == TPID_8021Q:
                return None, frame  # tagged frames are not accepted on an access port
        return port.vlan, frame

    @staticmethod
    def emit(out: EnginePort, vlan: int, payload: bytes) -> None:
        if out.mode == "dot1q":
            out.send(payload if vlan == out.vlan else _tag(payload, vlan))
        elif out.vlan == vlan:
            out.send(payload)


class BuiltinDevice(Device):
    """Ethernet switch or hub run by the SwitchEngine instead of dynamips."""

    hub = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = SwitchEngine(hub=self.hub)

    async def attach(self, port: int, nio: NIO) -> None:
        if isinstance(nio, NIOUDP):
            await self.engine.add_udp_port(port, nio.lport, nio.rhost, nio.rport, self.server.udp_host)
        elif isinstance(nio, NIONull):
            self.engine.add_null_port(port)
        else:
            raise Conflict(f"NIO of type {nio.type} is not supported by the built-in switch; "
                           "install dynamips to use it ([Dynamips] switch_backend = dynamips)")

    async def detach(self, port: int, nio: NIO) -> None:
        self.engine.remove_port(port)

    async def begin_capture(self, port: int, nio: NIO, path: Path, data_link_type: str) -> None:
        try:
            self.engine.start_capture(port, path, data_link_type)
        except OSError as exc:
            raise EmulatorError(f"Cannot write the capture file {path}: {exc.strerror or exc}") from exc

    async def end_capture(self, port: int, nio: NIO) -> None:
        self.engine.stop_capture(port)

    async def shutdown(self) -> None:
        self.engine.close()


class BuiltinEthernetSwitch(EthernetSwitchMixin, BuiltinDevice):
    device_type = "ethernet_switch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings: dict[int, dict[str, Any]] = {}

    def as_json(self) -> dict[str, Any]:
        return self.switch_json(super().as_json())

    async def apply_port_settings(self, port: int, settings: dict[str, Any]) -> None:
        self.allocated(port)
        values = SwitchPortSettings.normalise(port, settings)
        ethertype = int(values["ethertype"], 16) if values["ethertype"] else TPID_8021Q
        self.engine.set_mode(port, values["type"], values["vlan"], ethertype)
        self.settings[port] = values

    async def detach(self, port: int, nio: NIO) -> None:
        self.settings.pop(port, None)
        await super().detach(port, nio)


class BuiltinHub(BuiltinDevice):
    device_type = "ethernet_hub"
    hub = True


BUILTIN_DEVICES: dict[str, type[BuiltinDevice]] = {
    cls.device_type: cls for cls in (BuiltinEthernetSwitch, BuiltinHub)
}
