"""Console (TCP) and tunnel (UDP) port allocation, shared by every project and emulator on the server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from gns3core.errors import Conflict

log = logging.getLogger(__name__)


# Ports web browsers refuse to open (the "unsafe ports" of the Fetch standard). Never handed out automatically, as
# released GNS3 1.5.x does: an HTTP console on one of them could not be opened. A client may still ask for one.
BROWSER_REFUSED_PORTS = frozenset({
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
    111, 113, 115, 117, 119, 123, 135, 139, 143, 179, 389, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 556, 563,
    587, 601, 636, 993, 995, 2049, 3659, 4045, 6000, 6665, 6666, 6667, 6668, 6669,
})


def _probe(port: int, host: str, kind: int, reuse: bool = True) -> bool:
    """True when the host lets us bind that port right now (the probe socket is closed at once). `::` probes IPv6 and
    IPv4 together (a dual-stack socket), as tunnels bound there use both."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, kind) as sock:
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
    except OSError:
        return False
    return True


def tcp_port_is_free(port: int, host: str) -> bool:
    """Free on the console host, and on every address without SO_REUSEADDR: some emulators (vpcs) bind the
    wildcard address without it, and would fail on a port held elsewhere or lingering in TIME_WAIT."""
    wildcard = "::" if ":" in host else "0.0.0.0"
    return _probe(port, host, socket.SOCK_STREAM) and _probe(port, wildcard, socket.SOCK_STREAM, reuse=False)


def udp_port_is_free(port: int, host: str) -> bool:
    """Free for a tunnel: probed without SO_REUSEADDR, since emulators (qemu) set it on their tunnel sockets, and two
    sockets that both set it may share a UDP port; UDP has no TIME_WAIT that the option would be needed for."""
    return _probe(port, host, socket.SOCK_DGRAM, reuse=False)


@dataclass
class PortRange:
    start: int
    end: int

    def __contains__(self, port: int) -> bool:
        return self.start <= port <= self.end


class PortManager:
    """Hands out ports lowest-free-first, never the same port twice while it is recorded.

    Ports are recorded server-wide and per owner (a project id) so that closing a project releases all of its ports.
    Tunnel ports are probed on `udp_host` (`[Server] udp_host`), console ports on the console host.
    """

    def __init__(self, console_host: str, console_range: PortRange, udp_range: PortRange,
                 udp_host: str = "0.0.0.0") -> None:
        self.console_host = console_host
        self.udp_host = udp_host
        self.console_range = console_range
        self.udp_range = udp_range
        self.tcp_used: set[int] = set()
        self.udp_used: set[int] = set()
        self._tcp_by_owner: dict[str, set[int]] = {}
        self._udp_by_owner: dict[str, set[int]] = {}
        # Offsets of extra UDP ports some emulator binds next to its tunnel port by itself (vpcs 0.5b2 binds
        # lport+9): every tunnel port handed out holds these companions too, so no two links ever collide.
        self.udp_companion_offsets: tuple[int, ...] = ()
        self._companions: dict[int, list[int]] = {}

    # -- TCP (consoles) --------------------------------------------------------------------------------------------

    def get_free_tcp_port(self, owner: str, port_range: PortRange | None = None) -> int:
        """Lowest port of the range that nobody holds and the host lets us bind."""
        rng = port_range or self.console_range
        port = self._scan(rng, self.tcp_used, lambda p: tcp_port_is_free(p, self.console_host), "TCP")
        self._record(port, owner, self.tcp_used, self._tcp_by_owner)
        return port

    def reserve_tcp_port(
        self, port: int, owner: str, port_range: PortRange | None = None, warn: Callable[[str], None] | None = None
    ) -> int:
        """Reserve the requested console port, or substitute a free one (never an error) and warn about it."""
        rng = port_range or self.console_range
        host = self.console_host
        reason = None
        if port in self.tcp_used:
            reason = "already in use"
        elif port not in rng:
            reason = f"is outside the range {rng.start}-{rng.end}"
        elif not tcp_port_is_free(port, host):
            reason = "already in use"
        if reason is None:
            self._record(port, owner, self.tcp_used, self._tcp_by_owner)
            return port
        new_port = self.get_free_tcp_port(owner, rng)
        if reason == "already in use":
            message = f"TCP port {port} already in use on host {host}. Port has been replaced by {new_port}"
        else:
            message = f"TCP port {port} {reason} on host {host}. Port has been replaced by {new_port}"
        log.warning(message)
        if warn is not None:
            warn(message)
        return new_port

    def release_tcp_port(self, port: int | None, owner: str | None = None) -> None:
        self._release(port, owner, self.tcp_used, self._tcp_by_owner)

    # -- UDP (tunnels) ---------------------------------------------------------------------------------------------

    def get_free_udp_port(self, owner: str) -> int:
        """Lowest free tunnel port whose companion ports (see `udp_companion_offsets`) are free too."""
        extra = self.udp_companion_offsets

        def usable(p: int) -> bool:
            others = [p + off for off in extra]
            if any(o in self.udp_used or o not in self.udp_range for o in others):
                return False
            host = self.udp_host
            return udp_port_is_free(p, host) and all(udp_port_is_free(o, host) for o in others)

        port = self._scan(self.udp_range, self.udp_used, usable, "UDP", f" on host {self.udp_host}")
        self._record(port, owner, self.udp_used, self._udp_by_owner)
        self._hold_companions(port, owner)
        return port

    def _hold_companions(self, port: int, owner: str) -> None:
        held = [port + off for off in self.udp_companion_offsets if port + off not in self.udp_used]
        for companion in held:
            self._record(companion, owner, self.udp_used, self._udp_by_owner)
        if held:
            self._companions[port] = held

    def reserve_udp_port(self, port: int, owner: str) -> int:
        """Hold a specific tunnel port; 409 when it is out of range or already held."""
        if port in self.udp_used:
            raise Conflict(f"UDP port {port} already in use on host {self.udp_host}")
        if port not in self.udp_range:
            raise Conflict(
                f"UDP port {port} is outside the range {self.udp_range.start}-{self.udp_range.end}"
            )
        self._record(port, owner, self.udp_used, self._udp_by_owner)
        self._hold_companions(port, owner)
        return port

    def release_udp_port(self, port: int | None, owner: str | None = None) -> None:
        self._release(port, owner, self.udp_used, self._udp_by_owner)
        for companion in self._companions.pop(port, ()):  # type: ignore[arg-type]
            self._release(companion, owner, self.udp_used, self._udp_by_owner)

    # -- owners ----------------------------------------------------------------------------------------------------

    def release_owner(self, owner: str) -> None:
        """Release every port still recorded for an owner (project close or delete)."""
        for port in list(self._tcp_by_owner.get(owner, ())):
            self.release_tcp_port(port, owner)
        for port in list(self._udp_by_owner.get(owner, ())):
            self.release_udp_port(port, owner)
        self._tcp_by_owner.pop(owner, None)
        self._udp_by_owner.pop(owner, None)

    def ports_of(self, owner: str) -> tuple[set[int], set[int]]:
        return set(self._tcp_by_owner.get(owner, ())), set(self._udp_by_owner.get(owner, ()))

    # -- internals -------------------------------------------------------------------------------------------------

    def _scan(self, rng: PortRange, used: set[int], usable: Callable[[int], bool], kind: str, where: str = "") -> int:
        last_error = "all ports are in use"
        for port in range(rng.start, rng.end + 1):
            if port in used or port in BROWSER_REFUSED_PORTS:
                continue
            if usable(port):
                return port
            last_error = f"port {port} cannot be bound"
        raise Conflict(
            f"Could not find a free {kind} port between {rng.start} and {rng.end}{where}, last problem: {last_error}"
        )

    @staticmethod
    def _record(port: int, owner: str, used: set[int], by_owner: dict[str, set[int]]) -> None:
        used.add(port)
        by_owner.setdefault(owner, set()).add(port)

    @staticmethod
    def _release(port: int | None, owner: str | None, used: set[int], by_owner: dict[str, set[int]]) -> None:
        if port is None:
            return
        used.discard(port)
        owners = [owner] if owner is not None else list(by_owner)
        for name in owners:
            ports = by_owner.get(name)
            if ports is not None:
                ports.discard(port)
