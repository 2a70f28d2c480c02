"""One virtual PC: its IPv4 settings, its ARP cache and the stack that answers the network as vpcs does.

The stack runs only when a frame arrives. It answers ARP requests for the PC's address, echo requests, UDP probes
(echoed back, or "port unreachable" on the last hop, so vpcs's UDP ping and traceroute work against it) and TCP
probes (a tiny responder for vpcs's TCP ping). Everything else addressed to the PC is offered to the waiters of the
command running on its console (a ping waiting for its reply), then dropped. ARP entries carry the second they were
learned; their 120 s lifetime is checked when they are read, so an idle PC has nothing scheduled at all.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_vpcs.engine import packets as pk

if TYPE_CHECKING:
    from gns3_vpcs.engine.console import Console
    from gns3_vpcs.engine.nic import TapLink, UdpLink
    from gns3_vpcs.engine.shell import Shell

ARP_LIFETIME = 120  # seconds, as vpcs
ARP_SIZE = 64  # entries kept per PC
TCP_SESSIONS = 16
DEFAULT_MTU = 1500
TTL = 64

# (received at, packet) -> True when the waiter took it
Waiter = Callable[[float, pk.IPv4Packet, bytes], bool]


def tick() -> int:
    """Whole seconds on a clock that never jumps: what ARP ages and DHCP leases are counted in."""
    return int(time.monotonic())


@dataclass(slots=True)
class Dhcp:
    """The lease a DHCP server granted (zero when the address was set by hand)."""

    server: int = 0
    lease: int = 0
    renew: int = 0
    rebind: int = 0
    granted_at: int = 0
    domain: str = ""


@dataclass(slots=True)
class IPv4Settings:
    ip: int = 0
    cidr: int = 0
    gateway: int = 0
    dns: list[int] = field(default_factory=list)
    mtu: int = 0
    domain: str = ""
    dynamic: bool = False  # obtained by DHCP: `save` writes `dhcp` instead of the address
    dhcp: Dhcp = field(default_factory=Dhcp)


class Inbox:
    """Answers for a command that exchanges several packets (a TCP ping): none is lost between two waits."""

    def __init__(self, pc: VirtualPC, match: Callable[[float, pk.IPv4Packet, bytes], Any]) -> None:
        self.pc = pc
        self.match = match
        self.items: deque[Any] = deque()
        self.wakeup: asyncio.Future[None] | None = None

    def offer(self, at: float, packet: pk.IPv4Packet, src_mac: bytes) -> bool:
        result = self.match(at, packet, src_mac)
        if result is None:
            return False
        self.items.append(result)
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)
        return True

    async def get(self, timeout: float) -> Any:
        """The next answer, waiting up to `timeout` seconds; None when none came."""
        if not self.items:
            self.wakeup = self.pc.loop.create_future()
            try:
                await asyncio.wait_for(self.wakeup, timeout)
            except TimeoutError:
                return None
            finally:
                self.wakeup = None
        return self.items.popleft()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.offer in self.pc.waiters:
            self.pc.waiters.remove(self.offer)


class VirtualPC:
    """A PC as vpcs models one: a name, a MAC, IPv4 settings, a link and a console."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pc_id: str, mac: bytes, directory: Path) -> None:
        self.loop = loop
        self.id = pc_id
        self.mac = mac
        self.directory = directory
        self.name = "VPCS"  # vpcs's `xname`: the prompt, changed by `set pcname`
        self.ipv4 = IPv4Settings()
        self.arp_cache: dict[int, tuple[bytes, int]] = {}
        self.link: UdpLink | TapLink | None = None
        self.link_spec: dict[str, Any] = {}
        self.console: Console | None = None
        self.shell: Shell | None = None
        self.waiters: list[Waiter] = []
        self._arp_pending: dict[int, list[asyncio.Future[bytes]]] = {}
        self._tcp_sessions: dict[tuple[int, int, int], int] = {}
        self._ip_ident = random.randrange(0x10000)
        self.renewal: asyncio.TimerHandle | None = None  # a DHCP lease's renewal, the only timer a PC may hold

    # -- sending -----------------------------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.link is not None:
            self.link.send(frame)

    def next_ident(self) -> int:
        self._ip_ident = (self._ip_ident + 1) & 0xFFFF
        return self._ip_ident

    def send_ip(self, dst_mac: bytes, dst: int, proto: int, payload: bytes, ttl: int = TTL, src: int | None = None,
                ) -> None:
        packet = pk.ipv4(self.ipv4.ip if src is None else src, dst, proto, payload, ttl, self.next_ident())
        self.send(pk.ethernet(dst_mac, self.mac, pk.ETH_IPV4, packet))

    # -- ARP ---------------------------------------------------------------------------------------------------------

    def arp_lookup(self, ip: int) -> bytes | None:
        entry = self.arp_cache.get(ip)
        if entry is None:
            return None
        if tick() - entry[1] > ARP_LIFETIME:
            del self.arp_cache[ip]
            return None
        return entry[0]

    def arp_entries(self) -> list[tuple[int, bytes, int]]:
        """(address, MAC, seconds left) of each live entry, oldest learned first."""
        now = tick()
        live = []
        for ip, (mac, learned) in list(self.arp_cache.items()):
            age = now - learned
            if age < ARP_LIFETIME:
                live.append((ip, mac, ARP_LIFETIME - age))
            else:
                del self.arp_cache[ip]
        return live

    def learn(self, ip: int, mac: bytes) -> None:
        """Remember a neighbour (only one of this PC's subnet, as vpcs) and wake whoever waits for it."""
        if not pk.same_net(ip, self.ipv4.ip, self.ipv4.cidr) or mac == pk.ZERO_MAC:
            return
        if ip not in self.arp_cache and len(self.arp_cache) >= ARP_SIZE:
            self.arp_entries()  # drop the expired ones first
            if len(self.arp_cache) >= ARP_SIZE:
                self.arp_cache.pop(next(iter(self.arp_cache)))
        self.arp_cache[ip] = (mac, tick())
        waiting = self._arp_pending.pop(ip, None)
        if waiting:
            for future in waiting:
                if not future.done():
                    future.set_result(mac)

    async def resolve(self, ip: int, tries: int = 3, wait: float = 1.0) -> bytes | None:
        """The MAC of `ip`: from the cache, else up to `tries` broadcast requests one second apart (vpcs's rule)."""
        known = self.arp_lookup(ip)
        if known is not None:
            return known
        for _ in range(tries):
            future: asyncio.Future[bytes] = self.loop.create_future()
            self._arp_pending.setdefault(ip, []).append(future)
            self.send(pk.arp(pk.ARP_REQUEST, self.mac, self.ipv4.ip, pk.ZERO_MAC, ip))
            try:
                return await asyncio.wait_for(future, wait)
            except TimeoutError:
                continue
            finally:
                pending = self._arp_pending.get(ip)
                if pending is not None and future in pending:
                    pending.remove(future)
                    if not pending:
                        del self._arp_pending[ip]
        return None

    def next_hop(self, dst: int) -> int | None:
        """The address whose MAC a packet to `dst` is sent to: itself on the PC's subnet, else the gateway."""
        if pk.same_net(dst, self.ipv4.ip, self.ipv4.cidr):
            return dst
        return self.ipv4.gateway or None

    # -- receiving ---------------------------------------------------------------------------------------------------

    def receive(self, frame: bytes) -> None:
        """One frame from the link (called by the event loop)."""
        if len(frame) < 14:
            return
        src_mac = frame[6:12]
        if src_mac == pk.BROADCAST_MAC:
            return
        ethertype = frame[12] << 8 | frame[13]
        if ethertype == pk.ETH_ARP:
            self._receive_arp(frame)
        elif ethertype == pk.ETH_IPV4:
            dst_mac = frame[0:6]
            if dst_mac == self.mac or dst_mac == pk.BROADCAST_MAC:
                packet = pk.read_ipv4(frame)
                if packet is not None:
                    self._receive_ipv4(time.perf_counter(), packet, src_mac, dst_mac == self.mac)

    def _receive_arp(self, frame: bytes) -> None:
        arp = pk.read_arp(frame)
        if arp is None or not self.ipv4.ip:
            return
        if arp.op == pk.ARP_REQUEST and arp.target_ip == self.ipv4.ip:
            self.learn(arp.sender_ip, arp.sender_mac)
            self.send(pk.arp(pk.ARP_REPLY, self.mac, self.ipv4.ip, arp.sender_mac, arp.sender_ip))
        elif arp.op == pk.ARP_REPLY and pk.same_net(arp.target_ip, self.ipv4.ip, self.ipv4.cidr):
            self.learn(arp.sender_ip, arp.sender_mac)

    def _receive_ipv4(self, at: float, packet: pk.IPv4Packet, src_mac: bytes, unicast: bool) -> None:
        mine = self.ipv4.ip != 0 and packet.dst == self.ipv4.ip
        if mine and unicast:
            if packet.proto == pk.PROTO_ICMP:
                if packet.payload[:1] == b"\x08":  # echo request
                    self._echo_reply(packet, src_mac)
                    return
            elif packet.proto == pk.PROTO_UDP:
                if self._udp_probe(packet, src_mac):
                    return
            elif packet.proto == pk.PROTO_TCP:
                if self._tcp_probe(at, packet, src_mac):
                    return
        for waiter in list(self.waiters):
            if waiter(at, packet, src_mac):
                return

    def _echo_reply(self, packet: pk.IPv4Packet, src_mac: bytes) -> None:
        request = packet.payload
        if len(request) < 8:
            return
        rest = int.from_bytes(request[4:8], "big")
        self.send_ip(src_mac, packet.src, pk.PROTO_ICMP, pk.icmp(pk.ICMP_ECHO_REPLY, 0, rest, request[8:]))

    def _udp_probe(self, packet: pk.IPv4Packet, src_mac: bytes) -> bool:
        """vpcs's UDP echo: a datagram starting with our own MAC is the answer to our probe (for the waiters);
        DHCP and DNS answers go to the waiters too; any other datagram is sent back, or answered "port unreachable"
        when it arrives with TTL 1 (the last hop of a trace). True when handled here."""
        datagram = pk.read_udp(packet.payload)
        if datagram is None:
            return True
        sport, dport, data = datagram
        if sport in (53, 67) or data[:6] == self.mac:
            return False
        if packet.ttl <= 1:
            quoted = (packet.header + packet.payload)[:len(packet.header) + 8 + 16]
            self.send_ip(src_mac, packet.src, pk.PROTO_ICMP,
                         pk.icmp(pk.ICMP_UNREACHABLE, pk.UNREACHABLE_PORT, 0, quoted))
        else:
            self.send_ip(src_mac, packet.src, pk.PROTO_UDP, pk.udp(self.ipv4.ip, packet.src, dport, sport, data))
        return True

    def _tcp_probe(self, at: float, packet: pk.IPv4Packet, src_mac: bytes) -> bool:
        """A small TCP responder: SYN gets SYN+ACK, data gets ACK, FIN gets ACK then FIN+ACK. Segments for a
        connection this PC opened itself (a TCP ping running on its console) go to the waiters instead."""
        segment = pk.read_tcp(packet.payload)
        if segment is None:
            return True
        for waiter in list(self.waiters):
            if waiter(at, packet, src_mac):
                return True
        key = (packet.src, segment.sport, segment.dport)
        flags = segment.flags
        if flags & pk.TCP_RST:
            self._tcp_sessions.pop(key, None)
            return True

        def reply(seq: int, ack: int, reply_flags: int) -> None:
            self.send_ip(src_mac, packet.src, pk.PROTO_TCP,
                         pk.tcp(self.ipv4.ip, packet.src, segment.dport, segment.sport, seq, ack, reply_flags))

        if flags & (pk.TCP_SYN | pk.TCP_ACK) == pk.TCP_SYN:
            if key not in self._tcp_sessions and len(self._tcp_sessions) >= TCP_SESSIONS:
                self._tcp_sessions.pop(next(iter(self._tcp_sessions)))
            initial = random.getrandbits(32)
            self._tcp_sessions[key] = initial
            reply(initial, segment.seq + 1, pk.TCP_SYN | pk.TCP_ACK)
            return True
        if key not in self._tcp_sessions:
            return True
        received = segment.seq + len(segment.data)
        if flags & pk.TCP_FIN:
            del self._tcp_sessions[key]
            reply(segment.ack, received + 1, pk.TCP_ACK)
            reply(segment.ack, received + 1, pk.TCP_FIN | pk.TCP_ACK)
        elif segment.data:
            reply(segment.ack, received, pk.TCP_ACK)
        return True

    # -- waiting for answers (used by the console commands) ------------------------------------------------------------

    def inbox(self, match: Callable[[float, pk.IPv4Packet, bytes], Any]) -> Inbox:
        """Collect the packets `match` accepts (returns non-None for) until the inbox is closed."""
        box = Inbox(self, match)
        self.waiters.append(box.offer)
        return box

    async def expect(self, match: Callable[[float, pk.IPv4Packet, bytes], Any], timeout: float) -> Any:
        """Wait up to `timeout` seconds for one packet `match` accepts; its result, or None."""
        with self.inbox(match) as box:
            return await box.get(timeout)

    # -- settings --------------------------------------------------------------------------------------------------

    def clear_ipv4(self) -> None:
        """`clear ip`: address, mask, gateway, DNS and lease gone (the MAC stays)."""
        self.cancel_renewal()
        self.ipv4 = IPv4Settings()

    def cancel_renewal(self) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            self.renewal = None

    def close(self) -> None:
        """Stopped: the link and console go, a command still running is cancelled, nothing stays scheduled."""
        self.cancel_renewal()
        if self.shell is not None:
            self.shell.close()
        if self.console is not None:
            self.console.close()
        if self.link is not None:
            self.link.close()
            self.link = None
        for waiting in self._arp_pending.values():
            for future in waiting:
                future.cancel()
        self._arp_pending.clear()
        self.waiters.clear()
