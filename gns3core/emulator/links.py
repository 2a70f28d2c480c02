"""Link wiring: while a VM runs, each port's emulator-side endpoint is bridged to the NIO attached to that port.

GNS3 1.5 ran uBridge (or iouyap) next to the emulator for this; here the core's data plane does it. A plugin whose
emulator cannot speak the NIO itself (a container's veth, a VMware vmnet interface, IOU's UNIX sockets) gives its VM
a :class:`LinkWiring` and says where each port's frames enter and leave:

    self.links = LinkWiring(self, lambda adapter, port: EthernetEndpoint(f"vmnet{...}"))

`BaseVM` then routes NIO changes and captures through it: a NIO added or replaced while the VM runs is bridged at
once, a removed one is unbridged, a capture goes to the port's bridge (and waits for the next start when the VM is
stopped). The plugin calls `links.start()` once its emulator is up and `links.stop()` when it goes down.

Some NIO types are the emulator's own business (VMware attaches `nio_nat` and `nio_vmnet` itself): name them in
`native_nios` and they are never bridged, and a capture on them is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gns3core.dataplane import (
    DataPlaneError,
    Endpoint,
    EthernetEndpoint,
    Impairments,
    TAPEndpoint,
    UDPEndpoint,
    UnixEndpoint,
)
from gns3core.emulator.nio import NIO, NIOTAP, NIOUDP, NIOUNIX, NIOGenericEthernet
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3core.dataplane import Bridge
    from gns3core.emulator.vm import BaseVM

log = logging.getLogger(__name__)

PortKey = tuple[int, int]
EndpointFactory = Callable[[int, int], "Endpoint | Awaitable[Endpoint]"]

SUSPENDED = Impairments(loss_percent=100.0)  # a suspended node neither sends nor answers anything


def nio_endpoint(nio: NIO, udp_host: str | None = None) -> Endpoint:
    """The data-plane endpoint that speaks a NIO: the far side of every bridge. 409 for a NIO no bridge can use."""
    if isinstance(nio, NIOUDP):
        return UDPEndpoint(nio.lport, nio.rhost, nio.rport, laddr=udp_host)
    if isinstance(nio, NIOTAP):
        return TAPEndpoint(nio.tap_device)
    if isinstance(nio, NIOGenericEthernet):  # nio_linux_ethernet too
        return EthernetEndpoint(nio.ethernet_device)
    if isinstance(nio, NIOUNIX):
        return UnixEndpoint(nio.local_file, nio.remote_file)
    raise Conflict(f"NIO of type {nio.type} is not supported")


class LinkWiring:
    """The bridges of one VM, one per port that has a NIO, alive while the VM runs."""

    def __init__(self, vm: BaseVM, endpoint_for: EndpointFactory, *,
                 process_bridges: bool | Literal["shared"] | None = None, native_nios: Iterable[str] = ()) -> None:
        """`endpoint_for(adapter, port)` returns (or awaits to) a new, unopened endpoint for the emulator's side.
        NIO types in `native_nios` are attached by the emulator itself, so they get no bridge."""
        self.vm = vm
        self.endpoint_for = endpoint_for
        self.process_bridges = process_bridges
        self.native_nios = frozenset(native_nios)
        self.bridges: dict[PortKey, Bridge] = {}
        self.active = False
        self.suspended = False
        self._lock = asyncio.Lock()

    @property
    def dataplane(self) -> Any:
        return self.vm.server.dataplane

    def bridge_name(self, adapter: int, port: int) -> str:
        return f"{self.vm.module_name}-{self.vm.id}-{adapter}-{port}"

    def _udp_host(self) -> str | None:
        return getattr(self.vm.server, "udp_host", None)

    # -- lifecycle: the plugin calls these -----------------------------------------------------------------------

    async def start(self) -> None:
        """The emulator is up: bridge every port that has a NIO. All or nothing: on failure nothing stays wired."""
        async with self._lock:
            self.active = True
            ports = [(a, p, nio) for a, adapter in enumerate(self.vm.adapters) for p, nio in adapter.ports.items()
                     if self.bridged(nio)]
            results = await asyncio.gather(*(self._connect(a, p, nio) for a, p, nio in ports), return_exceptions=True)
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                await self._disconnect_all()
                self.active = False
                raise failure

    async def stop(self) -> None:
        """The emulator is going down: remove every bridge (captures resume at the next start)."""
        async with self._lock:
            self.active = False
            self.suspended = False
            await self._disconnect_all()

    def bridged(self, nio: NIO) -> bool:
        """Whether this NIO goes through a bridge (and so can be captured), rather than the emulator itself."""
        return nio.type not in self.native_nios

    def set_suspended(self, suspended: bool) -> None:
        """A suspended node drops every frame both ways; the bridges stay so resuming is instant."""
        self.suspended = suspended
        for bridge in self.bridges.values():
            if not bridge.closed:
                bridge.set_impairments(SUSPENDED if suspended else Impairments())

    # -- called by BaseVM on API requests ------------------------------------------------------------------------

    async def nio_added(self, adapter: int, port: int, nio: NIO) -> None:
        """A port got a NIO (or a new one): bridge it now when the VM runs, re-pointing an existing bridge."""
        async with self._lock:
            if not self.bridged(nio):
                await self._disconnect(adapter, port)
            elif self.active:
                await self._connect(adapter, port, nio)

    async def nio_removed(self, adapter: int, port: int) -> None:
        async with self._lock:
            await self._disconnect(adapter, port)

    async def start_capture(self, adapter: int, port: int, path: Path, data_link_type: str) -> None:
        """Capture a port's traffic to `path`: at once when bridged, else from the next start. 409 when the port
        has no link or already captures."""
        nio = self.vm.get_nio(adapter, port)
        if nio is None:
            raise Conflict(f"Adapter {adapter} is not connected")
        if not self.bridged(nio):
            raise Conflict(f"Packet capture is not possible on adapter {adapter}: its {nio.type} link is attached by "
                           f"{self.vm.manager.kind} itself, not through the server")
        if nio.capturing:
            raise Conflict(f"Packet capture is already activated on adapter {adapter}")
        bridge = self.bridges.get((adapter, port))
        if bridge is not None:
            await asyncio.to_thread(self._bridge_capture, bridge, path, data_link_type)
        nio.capture_file, nio.capture_dlt = path, data_link_type

    async def stop_capture(self, adapter: int, port: int) -> None:
        nio = self.vm.get_nio(adapter, port)
        if nio is not None:
            nio.capture_file = nio.capture_dlt = None
        bridge = self.bridges.get((adapter, port))
        if bridge is not None and not bridge.closed:
            await asyncio.to_thread(bridge.stop_capture)

    # -- internals -------------------------------------------------------------------------------------------------

    @staticmethod
    def _bridge_capture(bridge: Bridge, path: Path, data_link_type: str) -> None:
        try:
            bridge.start_capture(str(path), data_link_type)
        except (DataPlaneError, OSError, ValueError) as exc:
            raise EmulatorError(f"Cannot start the packet capture: {exc}") from None

    async def _connect(self, adapter: int, port: int, nio: NIO) -> None:
        remote = nio_endpoint(nio, self._udp_host())
        key = (adapter, port)
        bridge = self.bridges.get(key)
        try:
            if bridge is not None and not bridge.closed:
                await bridge.update_endpoint("b", remote)
            else:
                local = self.endpoint_for(adapter, port)
                if asyncio.iscoroutine(local) or isinstance(local, asyncio.Future):
                    local = await local
                bridge = await self.dataplane.create_bridge(self.bridge_name(adapter, port), local, remote,
                                                            process=self.process_bridges)
                self.bridges[key] = bridge
                if self.suspended:
                    bridge.set_impairments(SUSPENDED)
        except DataPlaneError as exc:
            raise EmulatorError(f"Cannot connect adapter {adapter} port {port}: {exc}") from None
        if nio.capture_file is not None:
            await asyncio.to_thread(self._bridge_capture, bridge, nio.capture_file, nio.capture_dlt or "DLT_EN10MB")

    async def _disconnect(self, adapter: int, port: int) -> None:
        bridge = self.bridges.pop((adapter, port), None)
        if bridge is None:
            return
        try:
            await self.dataplane.remove_bridge(bridge.name)
        except DataPlaneError as exc:
            log.debug("bridge %s: %s", bridge.name, exc)

    async def _disconnect_all(self) -> None:
        keys = list(self.bridges)
        await asyncio.gather(*(self._disconnect(a, p) for a, p in keys), return_exceptions=True)
