"""The console commands that talk to the network: ping (ICMP, UDP, TCP), trace, the duplicate-address check and DHCP.

Each is a coroutine that prints as it goes, exactly in vpcs's words and with vpcs's timing (a probe every second, a
one-second wait for each answer, three ARP tries). Timers exist only while one runs; Ctrl+C cancels it.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gns3_vpcs.engine import packets as pk
from gns3_vpcs.engine.pc import TTL, VirtualPC, tick
from gns3_vpcs.engine.texts import icmp_description

Print = Callable[[str], None]


@dataclass
class PingOptions:
    proto: int = pk.PROTO_ICMP
    count: int = 5  # -1: until Ctrl+C
    size: int = 64
    ttl: int = TTL
    sport: int = 0
    dport: int = 7
    interval: float = 1.0
    wait: float = 1.0

    @property
    def seq_word(self) -> str:
        return {pk.PROTO_UDP: "udp_seq", pk.PROTO_TCP: "tcp_seq"}.get(self.proto, "icmp_seq")


@dataclass
class IcmpError:
    """An ICMP error (unreachable, time exceeded, redirect) about one of our probes."""

    source: int
    ttl: int
    icmp_type: int
    code: int
    gateway: int = 0  # redirects: the better gateway


def _icmp_error(packet: pk.IPv4Packet, proto: int) -> IcmpError | None:
    """An unreachable / time exceeded / network redirect quoting a `proto` packet of ours, as vpcs reads them."""
    if packet.proto != pk.PROTO_ICMP or len(packet.payload) < 8 + 20:
        return None
    icmp_type, code = packet.payload[0], packet.payload[1]
    if icmp_type not in (pk.ICMP_UNREACHABLE, pk.ICMP_TIME_EXCEEDED, pk.ICMP_REDIRECT):
        return None
    if icmp_type == pk.ICMP_REDIRECT and code != 0:
        return None
    quoted_proto = packet.payload[8 + 9]
    if quoted_proto != proto:
        return None
    gateway = int.from_bytes(packet.payload[4:8], "big") if icmp_type == pk.ICMP_REDIRECT else 0
    return IcmpError(packet.src, packet.ttl, icmp_type, code, gateway)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


class Probe:
    """The state one ping or trace shares between its tries: where it goes and through which MAC."""

    def __init__(self, pc: VirtualPC, out: Print, target: str, dst: int) -> None:
        self.pc = pc
        self.out = out
        self.target = target  # as typed (vpcs prints it in some lines)
        self.dst = dst
        self.gateway = pc.ipv4.gateway
        self.dst_mac = b""

    async def route(self) -> bool:
        """Find the next hop's MAC; prints vpcs's message and returns False when there is none."""
        if pk.same_net(self.dst, self.pc.ipv4.ip, self.pc.ipv4.cidr):
            hop = self.dst
        elif not self.gateway:
            self.out("No gateway found\n")
            return False
        else:
            hop = self.gateway
        mac = await self.pc.resolve(hop)
        if mac is None:
            self.out(f"host ({pk.ip_text(hop)}) not reachable\n")
            return False
        self.dst_mac = mac
        return True

    async def redirected(self, error: IcmpError) -> bool:
        """Follow a network redirect as vpcs does (print it, use the new gateway); False when it leads nowhere."""
        self.out(f"Redirect Network, gateway {pk.ip_text(self.pc.ipv4.gateway)} -> {pk.ip_text(error.gateway)}\n")
        self.gateway = error.gateway
        await asyncio.sleep(0.1)
        return await self.route()


# -- ping ----------------------------------------------------------------------------------------------------------


async def ping(pc: VirtualPC, out: Print, target: str, dst: int, options: PingOptions) -> None:
    if dst == pc.ipv4.ip:
        seq = 1
        while options.count == -1 or seq <= options.count:
            out(f"{pk.ip_text(dst)} {options.seq_word}={seq} ttl={options.ttl} time=0.001 ms\n")
            seq += 1
            await asyncio.sleep(0.001)
        return
    probe = Probe(pc, out, target, dst)
    if not await probe.route():
        return
    if options.proto == pk.PROTO_TCP:
        await _tcp_ping(probe, options)
    else:
        await _datagram_ping(probe, options)


async def _datagram_ping(probe: Probe, options: PingOptions) -> None:
    """ICMP echo or vpcs's UDP echo: one probe, up to `wait` for its answer, then `interval` before the next."""
    pc, out = probe.pc, probe.out
    ident = int(time.time()) & 0xFFFF
    sport = options.sport or random.randrange(1024, 65000)
    seq = 1
    while options.count == -1 or seq <= options.count:
        if options.proto == pk.PROTO_UDP:
            data = pc.mac + bytes((i + 8) & 0xFF for i in range(6, max(options.size, 6)))
            payload = pk.udp(pc.ipv4.ip, probe.dst, sport, options.dport, data)
        else:
            data = bytes((i + 8) & 0xFF for i in range(max(options.size, 0)))
            payload = pk.icmp(pk.ICMP_ECHO, 0, ident << 16 | seq, data)
        this_seq = seq

        def answer(at: float, packet: pk.IPv4Packet, _mac: bytes, this_seq: int = this_seq):
            error = _icmp_error(packet, options.proto)
            if error is not None:
                return at, packet.ttl, error
            if packet.src != probe.dst:
                return None
            if options.proto == pk.PROTO_ICMP:
                if packet.proto == pk.PROTO_ICMP and packet.payload[:1] == b"\x00" and \
                        struct.unpack_from("!H", packet.payload, 6)[0] == this_seq:
                    return at, packet.ttl, None
                return None
            datagram = pk.read_udp(packet.payload) if packet.proto == pk.PROTO_UDP else None
            if datagram is not None and datagram[2][:6] == pc.mac:
                return at, packet.ttl, None
            return None

        sent = time.perf_counter()
        pc.send_ip(probe.dst_mac, probe.dst, options.proto, payload, ttl=options.ttl)
        result = await pc.expect(answer, options.wait)
        if result is None:
            out(f"{probe.target} {options.seq_word}={seq} timeout\n")
        else:
            at, ttl, error = result
            if error is None:
                out(f"{pk.ip_text(probe.dst)} {options.seq_word}={seq} ttl={ttl} time={_ms(at - sent)} ms\n")
            elif error.icmp_type == pk.ICMP_REDIRECT:
                if not await probe.redirected(error):
                    return
                continue
            else:
                out(f"*{pk.ip_text(error.source)} {options.seq_word}={seq} ttl={error.ttl} time={_ms(at - sent)} ms"
                    f" (ICMP type:{error.icmp_type}, code:{error.code}, "
                    f"{icmp_description(error.icmp_type, error.code)})\n")
        seq += 1
        await asyncio.sleep(options.interval)


class TcpProbe:
    """vpcs's TCP ping: connect, send `size` bytes, close; each step timed and printed."""

    def __init__(self, probe: Probe, options: PingOptions) -> None:
        self.probe = probe
        self.pc = probe.pc
        self.options = options
        self.sport = options.sport or random.randrange(1024, 65000)
        self.seq = 0
        self.ack = 0
        self.inbox = self.pc.inbox(self.match)

    def send(self, flags: int, data: bytes = b"", options: bytes = b"") -> float:
        pc, dst = self.pc, self.probe.dst
        segment = pk.tcp(pc.ipv4.ip, dst, self.sport, self.options.dport, self.seq, self.ack, flags, data, options)
        sent = time.perf_counter()
        pc.send_ip(self.probe.dst_mac, dst, pk.PROTO_TCP, segment, ttl=self.options.ttl)
        return sent

    def match(self, at: float, packet: pk.IPv4Packet, _mac: bytes) -> tuple[float, int, Any] | None:
        error = _icmp_error(packet, pk.PROTO_TCP)
        if error is not None:
            return at, packet.ttl, error
        if packet.src != self.probe.dst or packet.proto != pk.PROTO_TCP:
            return None
        segment = pk.read_tcp(packet.payload)
        if segment is None or segment.sport != self.options.dport or segment.dport != self.sport:
            return None
        return at, packet.ttl, segment

    async def answer(self, timeout: float) -> tuple[float, int, pk.TcpSegment | IcmpError] | None:
        return await self.inbox.get(timeout)

    async def connect(self) -> tuple[str, float, int, IcmpError | None]:
        """('ok' | 'timeout' | 'rst' | 'icmp', seconds, ttl, icmp error)."""
        for _ in range(3):
            self.seq, self.ack = random.getrandbits(32), 0
            options = b"\x02\x04\x05\xb4\x01\x01\x08\x0a" + int(time.time()).to_bytes(4, "big") + bytes(4) + \
                b"\x01\x03\x03\x01"
            sent = self.send(pk.TCP_SYN, options=options)
            result = await self.answer(self.options.wait)
            if result is None:
                continue
            at, ttl, reply = result
            if isinstance(reply, IcmpError):
                return "icmp", at - sent, ttl, reply
            if reply.flags & pk.TCP_RST:
                return "rst", at - sent, ttl, None
            if reply.flags & (pk.TCP_SYN | pk.TCP_ACK) == pk.TCP_SYN | pk.TCP_ACK and reply.ack == self.seq + 1:
                self.seq, self.ack = reply.ack, reply.seq + 1
                self.send(pk.TCP_ACK)
                return "ok", at - sent, ttl, None
        return "timeout", 0.0, 0, None

    async def send_data(self) -> tuple[bool, float, int]:
        data = bytes(0x0D if i % 2 == 0 else 0x0A for i in range(self.options.size))
        for _ in range(3):
            sent = self.send(pk.TCP_ACK | pk.TCP_PSH, data)
            result = await self.answer(self.options.wait)
            if result is None:
                continue
            at, ttl, reply = result
            if isinstance(reply, pk.TcpSegment) and reply.flags & pk.TCP_ACK and reply.ack == self.seq + len(data):
                self.seq, self.ack = reply.ack, reply.seq + len(reply.data)
                return True, at - sent, ttl
        return False, 0.0, 0

    async def close(self) -> tuple[bool, float, int]:
        for _ in range(3):
            sent = self.send(pk.TCP_FIN | pk.TCP_ACK | pk.TCP_PSH)
            result = await self.answer(self.options.wait)
            if result is None:
                continue
            at, ttl, reply = result
            if not isinstance(reply, pk.TcpSegment):
                continue
            elapsed = at - sent
            if not reply.flags & pk.TCP_FIN:  # an ACK first: the FIN follows
                follow = await self.answer(self.options.wait)
                if follow is None or not isinstance(follow[2], pk.TcpSegment) or not follow[2].flags & pk.TCP_FIN:
                    return False, 0.0, 0
                reply = follow[2]
            self.seq, self.ack = reply.ack, reply.seq + 1
            self.send(pk.TCP_ACK)
            return True, elapsed, ttl
        return False, 0.0, 0


async def _tcp_ping(probe: Probe, options: PingOptions) -> None:
    seq = 0
    while options.count == -1 or seq < options.count:
        seq += 1
        if seq > 1:
            await asyncio.sleep(options.wait)
        tcp = TcpProbe(probe, options)
        with tcp.inbox:
            await _tcp_exchange(probe, options, seq, tcp)


async def _tcp_exchange(probe: Probe, options: PingOptions, seq: int, tcp: TcpProbe) -> None:
    """One connect, send, close of a TCP ping, printed step by step."""
    out, where = probe.out, f"{options.dport}@{probe.target}"
    state, elapsed, ttl, error = await tcp.connect()
    if state == "timeout":
        out(f"Connect   {where} timeout\n")
        return
    if state == "rst":
        out(f"Connect   {where} RST returned\n")
        return
    if state == "icmp" and error is not None:
        out(f"*{pk.ip_text(error.source)} tcp_seq={seq} ttl={error.ttl} time={_ms(elapsed)} ms"
            f" (ICMP type:{error.icmp_type}, code:{error.code}, {icmp_description(error.icmp_type, error.code)})\n")
        return
    out(f"Connect   {where} seq={seq} ttl={ttl} time={_ms(elapsed)} ms\n")
    await asyncio.sleep(0.6 * elapsed)
    sent, elapsed, ttl = await tcp.send_data()
    if not sent:
        out(f"SendData  {where} timeout\n")
        return
    out(f"SendData  {where} seq={seq} ttl={ttl} time={_ms(elapsed)} ms\n")
    await asyncio.sleep(0.6 * elapsed)
    closed, elapsed, ttl = await tcp.close()
    if not closed:
        out(f"Close     {where} timeout\n")
        return
    out(f"Close     {where} seq={seq} ttl={ttl} time={_ms(elapsed)} ms\n")


# -- trace ---------------------------------------------------------------------------------------------------------


async def trace(pc: VirtualPC, out: Print, target: str, dst: int, proto: int, max_ttl: int) -> None:
    """One line per hop, three probes each; ends at the destination or after `max_ttl` hops."""
    if dst == pc.ipv4.ip:
        out(f"traceroute to {target}, {max_ttl} hops max\n")
        out(f" 1 {pk.ip_text(dst)}     0.001 ms\n")
        return
    label = {pk.PROTO_ICMP: " (ICMP)", pk.PROTO_TCP: " (TCP)"}.get(proto, "")
    out(f"trace to {target}, {max_ttl} hops max{label}, press Ctrl+C to stop\n")
    probe = Probe(pc, out, target, dst)
    if not await probe.route():
        return
    sport = random.getrandbits(16) & 0xFFF1
    dport = sport + 1
    ident = int(time.time()) & 0xFFFF
    for hop in range(1, max_ttl + 1):
        line = f"{hop:2d}   "
        named = False
        done = False
        for attempt in range(3):
            if proto == pk.PROTO_ICMP:
                payload = pk.icmp(pk.ICMP_ECHO, 0, ident << 16 | (hop * 3 + attempt), bytes(56))
            elif proto == pk.PROTO_TCP:
                payload = pk.tcp(pc.ipv4.ip, dst, sport, dport, random.getrandbits(32), 0, pk.TCP_SYN)
            else:
                payload = pk.udp(pc.ipv4.ip, dst, sport, dport, pc.mac + bytes(58))

            def answer(at: float, packet: pk.IPv4Packet, _mac: bytes):
                error = _icmp_error(packet, proto)
                if error is not None:
                    return at, error
                if packet.src == dst and packet.proto == proto:
                    return at, None
                return None

            sent = time.perf_counter()
            pc.send_ip(probe.dst_mac, dst, proto, payload, ttl=hop)
            result = await pc.expect(answer, 1.0)
            if result is None:
                line += "  *"
                continue
            at, error = result
            elapsed = _ms(at - sent)
            if error is not None and error.icmp_type == pk.ICMP_UNREACHABLE:
                if not named:  # printed once; the hop's other probes are still sent, as vpcs does
                    line += (f"*{pk.ip_text(error.source)}   {elapsed} ms (ICMP type:{error.icmp_type}, "
                             f"code:{error.code}, {icmp_description(error.icmp_type, error.code)})")
                    named = True
                done = True
                continue
            if not named:
                line += f"{pk.ip_text(error.source if error is not None else dst)} "
                named = True
            line += f"  {elapsed} ms"
            done = done or error is None
        out(line + "\n")
        if done:
            return


# -- duplicate address ---------------------------------------------------------------------------------------------


DUPLICATE_PROBE_WAIT = 1 / 3  # seconds after each of the three requests (vpcs: 1 s each, so 3 s in all)


async def address_in_use(pc: VirtualPC, ip: int) -> bytes | None:
    """The duplicate-address check: three ARP requests for our own new address; the MAC of a host that answers.

    vpcs waits a second after each request, so `ip` always takes 3 s when the address is free. The answer of a host
    holding the address comes back within milliseconds on an emulated link, so one second in all finds it as
    surely; the output is the same, only the wait is shorter."""
    return await pc.resolve(ip, wait=DUPLICATE_PROBE_WAIT)


# -- DHCP ----------------------------------------------------------------------------------------------------------

DHCP_DISCOVER, DHCP_OFFER, DHCP_REQUEST, DHCP_DECLINE, DHCP_ACK, DHCP_NAK, DHCP_RELEASE = 1, 2, 3, 4, 5, 6, 7
_MAGIC = b"\x63\x82\x53\x63"
_WANTED = bytes([1, 3, 6, 15, 51, 54, 58, 59])


@dataclass
class DhcpReply:
    kind: int
    yiaddr: int
    server: int
    mask: int = 0
    router: int = 0
    dns: tuple[int, ...] = ()
    lease: int = 0
    renew: int = 0
    rebind: int = 0
    domain: str = ""


def dhcp_message(pc: VirtualPC, kind: int, xid: int, requested: int = 0, server: int = 0, ciaddr: int = 0) -> bytes:
    """A BOOTP/DHCP client message (RFC 2131) carrying the PC's MAC and name."""
    head = struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, xid, 0, 0x8000 if not ciaddr else 0, ciaddr, 0, 0, 0)
    options = bytearray(_MAGIC)
    options += bytes([53, 1, kind])
    options += bytes([61, 7, 1]) + pc.mac
    if requested:
        options += bytes([50, 4]) + requested.to_bytes(4, "big")
    if server:
        options += bytes([54, 4]) + server.to_bytes(4, "big")
    name = pc.name.encode("latin-1", "replace")[:63]
    if name:
        options += bytes([12, len(name)]) + name
    if kind != DHCP_RELEASE:
        options += bytes([55, len(_WANTED)]) + _WANTED
    options.append(255)
    return head + pc.mac + bytes(10) + bytes(64 + 128) + bytes(options)


def read_dhcp(pc: VirtualPC, xid: int, data: bytes) -> DhcpReply | None:
    if len(data) < 240 or data[0] != 2 or int.from_bytes(data[4:8], "big") != xid or data[28:34] != pc.mac:
        return None
    if data[236:240] != _MAGIC:
        return None
    reply = DhcpReply(kind=0, yiaddr=int.from_bytes(data[16:20], "big"), server=0)
    i = 240
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        size = data[i + 1]
        value = data[i + 2:i + 2 + size]
        i += 2 + size
        if code == 53 and value:
            reply.kind = value[0]
        elif code == 54 and size >= 4:
            reply.server = int.from_bytes(value[:4], "big")
        elif code == 1 and size >= 4:
            reply.mask = int.from_bytes(value[:4], "big")
        elif code == 3 and size >= 4:
            reply.router = int.from_bytes(value[:4], "big")
        elif code == 6 and size >= 4:
            reply.dns = tuple(int.from_bytes(value[j:j + 4], "big") for j in range(0, min(size, 8) - 3, 4))
        elif code == 51 and size >= 4:
            reply.lease = int.from_bytes(value[:4], "big")
        elif code == 58 and size >= 4:
            reply.renew = int.from_bytes(value[:4], "big")
        elif code == 59 and size >= 4:
            reply.rebind = int.from_bytes(value[:4], "big")
        elif code == 15:
            reply.domain = value.decode("latin-1", "replace")
    return reply if reply.kind else None


def _broadcast(pc: VirtualPC, message: bytes) -> None:
    datagram = pk.udp(0, 0xFFFFFFFF, 68, 67, message)
    pc.send_ip(pk.BROADCAST_MAC, 0xFFFFFFFF, pk.PROTO_UDP, datagram, src=0)


async def _dhcp_answer(pc: VirtualPC, xid: int, kinds: tuple[int, ...], timeout: float) -> DhcpReply | None:
    def match(_at: float, packet: pk.IPv4Packet, _mac: bytes):
        if packet.proto != pk.PROTO_UDP:
            return None
        datagram = pk.read_udp(packet.payload)
        if datagram is None or datagram[0] != 67 or datagram[1] != 68:
            return None
        reply = read_dhcp(pc, xid, datagram[2])
        return reply if reply is not None and reply.kind in kinds else None

    return await pc.expect(match, timeout)


def _cidr(mask: int) -> int:
    return bin(mask).count("1") if mask else 24


def apply_lease(pc: VirtualPC, reply: DhcpReply) -> None:
    settings = pc.ipv4
    settings.ip, settings.cidr, settings.gateway = reply.yiaddr, _cidr(reply.mask), reply.router
    settings.dns = list(reply.dns[:2])
    settings.mtu = 1500
    settings.dynamic = True
    lease = reply.lease
    settings.dhcp.server, settings.dhcp.lease = reply.server, lease
    settings.dhcp.renew = reply.renew or lease // 2
    settings.dhcp.rebind = reply.rebind or lease * 7 // 8
    settings.dhcp.granted_at = tick()
    settings.dhcp.domain = reply.domain
    schedule_renewal(pc)


def schedule_renewal(pc: VirtualPC) -> None:
    """One timer per DHCP-configured PC, at the lease's renewal time (none for an infinite lease)."""
    pc.cancel_renewal()
    lease = pc.ipv4.dhcp
    if not lease.lease or lease.lease == 0xFFFFFFFF:
        return
    pc.renewal = pc.loop.call_later(max(lease.renew, 1), lambda: pc.loop.create_task(renew_in_background(pc)))


async def renew_in_background(pc: VirtualPC) -> None:
    """T1 reached: ask the server to extend the lease (silently, as vpcs's background job does)."""
    pc.renewal = None
    if not pc.ipv4.dynamic or pc.link is None:
        return
    xid = random.getrandbits(32)
    _broadcast(pc, dhcp_message(pc, DHCP_REQUEST, xid, requested=pc.ipv4.ip, server=pc.ipv4.dhcp.server))
    reply = await _dhcp_answer(pc, xid, (DHCP_ACK, DHCP_NAK), 3.0)
    if reply is not None and reply.kind == DHCP_ACK and reply.yiaddr == pc.ipv4.ip:
        apply_lease(pc, reply)


async def dhcp(pc: VirtualPC, out: Print, renew: bool) -> None:
    """`ip dhcp`: D (discover), O (offer), R (request), A (ack), then the address; vpcs's waits (1, 3, 9 s)."""
    xid = random.getrandbits(32)
    requested = pc.ipv4.ip if renew else 0
    pc.cancel_renewal()
    offer = None
    for wait in (1, 3, 9):
        out("D")
        _broadcast(pc, dhcp_message(pc, DHCP_DISCOVER, xid, requested=requested))
        offer = await _dhcp_answer(pc, xid, (DHCP_OFFER,), wait)
        if offer is not None:
            out("O")
            break
    if offer is None:
        out("\nCan't find dhcp server\n")
        return
    ack = None
    for _ in range(3):
        out("R")
        _broadcast(pc, dhcp_message(pc, DHCP_REQUEST, xid, requested=offer.yiaddr, server=offer.server))
        ack = await _dhcp_answer(pc, xid, (DHCP_ACK, DHCP_NAK), 1.0)
        if ack is not None and ack.kind == DHCP_ACK:
            out("A")
            break
        ack = None
    if ack is None:
        out("\nCan't get ip address from dhcp server\n")
        return
    if not ack.server:
        ack.server = offer.server
    apply_lease(pc, ack)
    holder = await address_in_use(pc, pc.ipv4.ip)
    if holder is not None:
        out(f"{pk.mac_text(holder)} use my ip {pk.ip_text(pc.ipv4.ip)}\n")
        pc.arp_cache.clear()
        pc.clear_ipv4()
        return
    line = f" IP {pk.ip_text(pc.ipv4.ip)}/{pc.ipv4.cidr}"
    if pc.ipv4.gateway:
        line += f" GW {pk.ip_text(pc.ipv4.gateway)}\n"
    out(line)


def dhcp_release(pc: VirtualPC) -> None:
    """`ip dhcp -x`: tell the server, forget the address."""
    settings = pc.ipv4
    if settings.dhcp.server and settings.ip:
        message = dhcp_message(pc, DHCP_RELEASE, random.getrandbits(32), server=settings.dhcp.server,
                               ciaddr=settings.ip)
        _broadcast(pc, message)
    pc.cancel_renewal()
    settings.ip = settings.cidr = settings.gateway = 0
