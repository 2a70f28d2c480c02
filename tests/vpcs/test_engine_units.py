"""The built-in engine's pieces on their own: packets, the telnet filter, the shell's parsing, the TAP link (inside a
network namespace of the test's own), and the control protocol."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from gns3_vpcs.engine import packets as pk
from gns3_vpcs.engine import protocol, shell
from gns3_vpcs.engine.console import TelnetFilter
from gns3_vpcs.engine.probes import DHCP_DISCOVER, DHCP_OFFER, dhcp_message, read_dhcp

from gns3core.checksum import internet_checksum
from gns3core.testing import require


def test_checksum_of_a_known_header() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")  # RFC 1071 style example, sum zeroed
    assert internet_checksum(header) == 0xB861
    built = pk.ipv4(0xC0A80001, 0xC0A800C7, pk.PROTO_UDP, b"x" * 95, ttl=64, ident=0)
    assert internet_checksum(built[:20]) == 0  # a header with its checksum sums to zero


def test_addresses_as_vpcs_reads_them() -> None:
    assert pk.inet_addr("10.0.0.1") == 0x0A000001
    assert pk.inet_addr("10.1") == 0x0A000001  # inet_addr's short forms are addresses too
    assert pk.inet_addr("foo") is None and pk.inet_addr("300.1.1.1") is None
    assert pk.inet_addr("255.255.255.255") is None  # inet_addr's error value
    assert pk.mask_of(24) == 0xFFFFFF00 and pk.mask_of(0) == 0
    assert pk.same_net(0x0A000001, 0x0A0000FE, 24) and not pk.same_net(0x0A000001, 0x0A000101, 24)
    assert pk.link_local6(bytes.fromhex("005079666802")) == "fe80::250:79ff:fe66:6802"


def test_frames_round_trip() -> None:
    mac, peer = bytes.fromhex("005079666800"), bytes.fromhex("005079666801")
    request = pk.arp(pk.ARP_REQUEST, mac, 0x0A000002, pk.ZERO_MAC, 0x0A000001)
    assert request[:6] == pk.BROADCAST_MAC
    parsed = pk.read_arp(request)
    assert (parsed.op, parsed.sender_mac, parsed.sender_ip, parsed.target_ip) == (1, mac, 0x0A000002, 0x0A000001)
    segment = pk.tcp(1, 2, 1000, 7, 42, 0, pk.TCP_SYN, b"", b"\x02\x04\x05\xb4")
    frame = pk.ethernet(peer, mac, pk.ETH_IPV4, pk.ipv4(1, 2, pk.PROTO_TCP, segment))
    packet = pk.read_ipv4(frame)
    assert (packet.src, packet.dst, packet.proto, packet.ttl) == (1, 2, pk.PROTO_TCP, 64)
    tcp = pk.read_tcp(packet.payload)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.flags, tcp.data) == (1000, 7, 42, pk.TCP_SYN, b"")
    assert pk.read_ipv4(frame[:30]) is None  # truncated frames are ignored
    datagram = pk.udp(1, 2, 68, 67, b"hello")
    assert pk.read_udp(datagram) == (68, 67, b"hello")


def test_telnet_filter_keeps_state_across_reads() -> None:
    telnet = TelnetFilter()
    assert telnet.feed(b"ab\xff") == b"ab"
    assert telnet.feed(b"\xfb\x01cd\xff\xfa\x18\x00xterm") == b"cd"  # WILL ECHO, then a subnegotiation starts
    assert telnet.feed(b"\xff\xf0ef\xff\xffg") == b"ef\xffg"  # it ends; IAC IAC is one 0xff


def test_dhcp_messages() -> None:
    class PC:
        mac = bytes.fromhex("005079666805")
        name = "PC5"

    discover = dhcp_message(PC(), DHCP_DISCOVER, 0x1234)  # type: ignore[arg-type]
    assert discover[0] == 1 and discover[28:34] == PC.mac and b"\x35\x01\x01" in discover
    offer = bytearray(discover)
    offer[0] = 2
    offer[16:20] = bytes([10, 9, 0, 105])
    options = bytes([53, 1, DHCP_OFFER, 54, 4, 10, 9, 0, 1, 1, 4, 255, 255, 255, 0, 3, 4, 10, 9, 0, 1,
                     51, 4, 0, 0, 2, 88, 255])
    reply = read_dhcp(PC(), 0x1234, bytes(offer[:240]) + options)  # type: ignore[arg-type]
    assert (reply.kind, reply.yiaddr, reply.server, reply.mask, reply.router, reply.lease) == \
        (DHCP_OFFER, 0x0A090069, 0x0A090001, 0xFFFFFF00, 0x0A090001, 600)
    assert read_dhcp(PC(), 0x9999, bytes(offer[:240]) + options) is None  # another transaction


def test_fixed_columns_overlap_as_in_vpcs() -> None:
    assert shell._columns([(0, "NAME"), (7, "IP/MASK")]) == "NAME   IP/MASK"
    assert shell._columns([(0, "ABCDEFGHIJ"), (7, "1.2.3.4/24")]) == "ABCDEFG1.2.3.4/24"
    assert shell._int("12abc") == 12 and shell._int("-3") == -3 and shell._int("x") == 0


def test_control_messages() -> None:
    message = {"id": 1, "op": "start", "pc": "x"}
    assert protocol.decode(protocol.encode(message)) == message
    with pytest.raises(ValueError):
        protocol.decode(b"[1]")


TAP_PROBE = textwrap.dedent("""
    import asyncio, socket, struct, sys
    from gns3_vpcs.engine.nic import TapLink
    device = sys.argv[1]
    loop = asyncio.new_event_loop()
    got = loop.create_future()
    def received(frame):
        if frame[12:14] == b"\\x88\\xb5" and not got.done():  # not the kernel's own IPv6 chatter
            got.set_result(frame)
    link = TapLink(loop, device, received)
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sniffer.bind((device, 0))
    sniffer.settimeout(5)
    sent = bytes.fromhex("ffffffffffff005079666800") + b"\\x88\\xb5" + b"from-the-pc".ljust(46, b".")
    link.send(sent)
    while True:
        seen = sniffer.recv(2048)
        if seen[12:14] == b"\\x88\\xb5":
            break
    assert seen[:len(sent)] == sent, seen
    back = bytes.fromhex("005079666800020000000001") + b"\\x88\\xb5" + b"to-the-pc".ljust(46, b".")
    sniffer.send(back)
    frame = loop.run_until_complete(asyncio.wait_for(got, 5))
    assert frame[:len(back)] == back, frame
    link.close()
    print("ok")
""")


def test_tap_link_in_a_namespace_of_its_own() -> None:
    """Frames both ways through a TAP device, inside a network namespace this test creates (and removes)."""
    require(os.geteuid() == 0 and shutil.which("ip") is not None and os.path.exists("/dev/net/tun"),
            "needs root, iproute2 and /dev/net/tun")
    namespace, device = f"gns3pcs{os.getpid()}", "tap-pc0"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        inside = ["ip", "netns", "exec", namespace]
        subprocess.run([*inside, "ip", "tuntap", "add", "dev", device, "mode", "tap"], check=True)
        subprocess.run([*inside, "ip", "link", "set", device, "up"], check=True)
        done = subprocess.run([*inside, sys.executable, "-c", TAP_PROBE, device], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_stale_engine_directories_are_removed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server killed with its workers leaves its engine directory; the next engine to start removes it (and only
    directories of servers that are gone)."""
    from gns3_vpcs.engine import supervisor

    monkeypatch.setattr(supervisor.tempfile, "tempdir", str(tmp_path))
    gone, alive, unknown = (tmp_path / f"{protocol.DIRECTORY_PREFIX}{name}" for name in ("gone", "alive", "unknown"))
    for directory in (gone, alive, unknown):
        directory.mkdir()
    (gone / supervisor.OWNER_FILE).write_text("999999999 12")  # no such process
    (alive / supervisor.OWNER_FILE).write_text(supervisor._process_identity(os.getpid()) or "")
    supervisor.remove_stale_directories()
    assert not gone.exists() and alive.exists() and unknown.exists()
