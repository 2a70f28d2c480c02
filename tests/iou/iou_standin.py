"""IOU stand-in: what the test suite runs in place of a Cisco IOU image (it is not IOU, and says so).

It is started through a tiny static 32-bit ELF (see standin_image.py) so that the server's real pre-start checks
(ELF class and byte order, executable bit, ldd) apply to it unchanged, and then behaves like an IOU image does:

- command line `[-e N] [-s N] [-n KB -m MB] [-L] [-l] <application id>`, `-h` prints the usage (with `-l` unless
  the image was built with the "no-l1" profile);
- checks the licence in the file named by IOURC (section [license], key for this host name);
- reads NETMAP to learn the peer of each of its ports, binds /tmp/netio<uid>/<appid> and exchanges frames in the
  netio framing (8-byte header);
- reads its startup/private configs from nvram_<appid> (IOS NVRAM layout, checksum checked), and writes them back
  on `write memory`, keeping the rest of the NVRAM;
- serves its console on the datagram sockets ttyS<appid> (ours) / ttyC<appid> (the server's);
- on Ethernet interfaces with `ip address A M` it answers ARP and ICMP echo, and can ping; on serial interfaces
  (Cisco HDLC) it answers SLARP requests and ICMP echo.
"""

from __future__ import annotations

import configparser
import getopt
import hashlib
import ipaddress
import os
import signal
import socket
import struct
import sys
import threading
import time

PROFILE = "full"
if len(sys.argv) > 1 and sys.argv[1].startswith("--standin-profile="):
    PROFILE = sys.argv.pop(1).split("=", 1)[1]

HELP = """Usage: <image> [options] <application id>
(IOU stand-in of the gns3core test suite: not a Cisco image)
Options:
-e <n>        Number of Ethernet interfaces (default 2)
-s <n>        Number of Serial interfaces (default 2)
-n <n>        Size of nvram in Kb (default 64KB)
-m <n>        Megabytes of router memory (default 256MB)
-L            Disable local console, use remote console
""" + ("-l            Enable Layer 1 keepalive messages\n" if PROFILE != "no-l1" else "")

NETIO = f"/tmp/netio{os.geteuid()}"
PAD1 = bytes.fromhex("4B582181567B0DF321439B7EAC1DE68A")
BROADCAST = b"\xff" * 6
lock = threading.Lock()


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fail(text: str, code: int = 1) -> None:
    say(text)
    sys.exit(code)


# -- licence -----------------------------------------------------------------------------------------------------


def check_licence() -> None:
    path = os.environ.get("IOURC") or os.path.expanduser("~/.iourc")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(open(path, encoding="utf-8").read())
        value = parser.get("license", socket.gethostname()).strip()
    except (OSError, configparser.Error):
        fail(f"IOU License Error: no license for {socket.gethostname()} in {path}")
    hostid = int(os.popen("hostid").read().strip(), 16)
    number = (hostid + sum(map(ord, socket.gethostname()))) & 0xFFFFFFFF
    expected = hashlib.md5(PAD1 + b"\x80" + bytes(39) + number.to_bytes(4, "big") + PAD1).hexdigest()[:16]
    if value.rstrip(";").lower() != expected:
        fail("IOU License Error: invalid license key")


# -- NVRAM ---------------------------------------------------------------------------------------------------------


def nvram_sum(data: bytes) -> int:
    total = 0
    for (word,) in struct.iter_unpack(">H", data):
        total += word
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return total


class Nvram:
    def __init__(self, path: str, size_kb: int) -> None:
        self.path = path
        self.size = size_kb * 1024
        self.version = 0x0F04
        self.startup = b""
        self.private = b""

    def load(self) -> None:
        try:
            data = open(self.path, "rb").read()
        except FileNotFoundError:
            say("%NVRAM: no NVRAM file, starting with an empty configuration")
            return
        self.size = len(data)
        if len(data) < 36 or data[:2] != b"\xab\xcd":
            say("%NVRAM: no startup configuration")
            return
        if nvram_sum(data[:len(data) // 2]) != 0xFFFF:
            say("%NVRAM: checksum error, ignoring the NVRAM")
            return
        fmt, _sum, self.version = struct.unpack_from(">HHH", data, 2)
        length = struct.unpack_from(">I", data, 16)[0]
        if fmt != 1:
            say("%NVRAM: compressed configuration not supported by this stand-in")
            return
        self.startup = data[36:36 + length]
        offset = (36 + length + 3) // 4 * 4
        for at in (offset, offset + 4):
            if data[at:at + 2] == b"\xfe\xdc":
                plen = struct.unpack_from(">I", data, at + 12)[0]
                self.private = data[at + 16:at + 16 + plen]
                break
        say(f"%NVRAM: startup configuration of {len(self.startup)} bytes loaded")

    def save(self, startup: bytes) -> None:
        try:
            old = bytearray(open(self.path, "rb").read())
        except FileNotFoundError:
            old = bytearray(self.size)
        body = bytearray(struct.pack(">HHHHIII", 0xABCD, 1, 0, self.version, 0x10000024, 0x10000024 + len(startup),
                                     len(startup)) + bytes(16) + startup)
        while len(body) % 4:
            body.append(0)
        start = 0x10000000 + len(body) + 16
        body += struct.pack(">HHIII", 0xFEDC, 1, start, start + len(self.private), len(self.private)) + self.private
        while len(body) % 4:
            body.append(0)
        old[:len(body)] = body
        struct.pack_into(">H", old, 4, 0)
        struct.pack_into(">H", old, 4, 0xFFFF - nvram_sum(bytes(old[:len(old) // 2])))
        tmp = self.path + ".new"
        with open(tmp, "wb") as handle:
            handle.write(old)
        os.replace(tmp, self.path)
        self.startup = startup


# -- configuration -------------------------------------------------------------------------------------------------


class Config:
    """The running config as IOS text lines, with just enough structure for hostname and interface addresses."""

    def __init__(self, text: str) -> None:
        self.lines = [line.rstrip("\r") for line in text.splitlines()]
        if not any(line.startswith("hostname ") for line in self.lines):
            self.lines.insert(0, "hostname Router")
        if "end" not in self.lines:
            self.lines.append("end")

    @property
    def hostname(self) -> str:
        return next(line.split(None, 1)[1] for line in self.lines if line.startswith("hostname "))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def set_global(self, prefix: str, line: str) -> None:
        for index, existing in enumerate(self.lines):
            if existing.startswith(prefix):
                self.lines[index] = line
                return
        self.lines.insert(0, line)

    def interface_block(self, name: str) -> int:
        header = f"interface {name}"
        if header not in self.lines:
            self.lines[self.lines.index("end"):self.lines.index("end")] = [header, "!"]
        return self.lines.index(header)

    def set_in_interface(self, name: str, prefix: str, line: str | None) -> None:
        start = self.interface_block(name) + 1
        end = start
        while end < len(self.lines) and self.lines[end].startswith(" "):
            end += 1
        for index in range(start, end):
            if self.lines[index].strip().startswith(prefix):
                if line is None:
                    del self.lines[index]
                else:
                    self.lines[index] = " " + line
                return
        if line is not None:
            self.lines.insert(end, " " + line)

    def addresses(self) -> dict[str, ipaddress.IPv4Interface]:
        result: dict[str, ipaddress.IPv4Interface] = {}
        current = None
        for line in self.lines:
            if line.startswith("interface "):
                current = line.split(None, 1)[1]
            elif not line.startswith(" "):
                current = None
            elif current and line.split()[:2] == ["ip", "address"] and len(line.split()) >= 4:
                parts = line.split()
                result[current] = ipaddress.IPv4Interface(f"{parts[2]}/{parts[3]}")
        return result


# -- the router ----------------------------------------------------------------------------------------------------


def checksum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(word for (word,) in struct.iter_unpack(">H", data))
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def ip_packet(src: bytes, dst: bytes, protocol: int, payload: bytes, ident: int = 0) -> bytes:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 255, protocol, 0, src, dst)
    header = header[:10] + struct.pack(">H", checksum16(header)) + header[12:]
    return header + payload


def icmp(kind: int, ident: int, seq: int, data: bytes) -> bytes:
    body = struct.pack(">BBHHH", kind, 0, 0, ident, seq) + data
    return body[:2] + struct.pack(">H", checksum16(body)) + body[4:]


class Router:
    def __init__(self, appid: int, ethernet: int, serial: int, config: Config, nvram: Nvram) -> None:
        self.appid = appid
        self.ethernet = ethernet
        self.serial = serial
        self.config = config
        self.nvram = nvram
        self.peers: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.arp: dict[bytes, bytes] = {}
        self.replies: dict[tuple[int, int], float] = {}
        self.event = threading.Condition(lock)
        self.sock = bind(f"{NETIO}/{appid}")
        self.frames_in = 0

    def interface_name(self, bay: int, unit: int) -> str:
        return f"{'Ethernet' if bay < self.ethernet else 'Serial'}{bay}/{unit}"

    def port_of(self, name: str) -> tuple[int, int] | None:
        for kind in ("Ethernet", "Serial"):
            if name.startswith(kind):
                bay, unit = name[len(kind):].split("/")
                return int(bay), int(unit)
        return None

    def mac(self, bay: int, unit: int) -> bytes:
        return bytes([0xAA, 0xBB, 0xCC, self.appid >> 8, self.appid & 0xFF, bay << 4 | unit])

    def read_netmap(self) -> None:
        with open("NETMAP", encoding="utf-8") as handle:
            for line in handle:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                ends = []
                for item in line.split():
                    node, port = item.split(":")
                    bay, unit = port.split("/")
                    ends.append((int(node), int(bay), int(unit)))
                for mine, other in ((ends[0], ends[1]), (ends[1], ends[0])):
                    if mine[0] == self.appid:
                        self.peers[(mine[1], mine[2])] = other
        say(f"NETMAP: {len(self.peers)} ports mapped")

    def send(self, bay: int, unit: int, frame: bytes) -> None:
        peer = self.peers.get((bay, unit))
        if peer is None:
            return
        node, pbay, punit = peer
        header = struct.pack(">HHBBBB", node, self.appid, pbay | punit << 4, bay | unit << 4, 1, 0)
        try:
            self.sock.sendto(header + frame, f"{NETIO}/{node}")
        except OSError:
            pass  # nobody listening for that port: the frame is lost, as on an unplugged cable

    def run(self) -> None:
        while True:
            data = self.sock.recv(65536)
            if len(data) <= 8:
                continue
            dst, _src, dport, _sport, kind, _channel = struct.unpack_from(">HHBBBB", data)
            if dst & 0x7FF != self.appid or kind != 1:
                continue
            self.frames_in += 1
            bay, unit = dport & 0x0F, dport >> 4
            if bay >= self.ethernet + self.serial:
                continue
            try:
                if bay < self.ethernet:
                    self.ethernet_frame(bay, unit, data[8:])
                else:
                    self.serial_frame(bay, unit, data[8:])
            except (struct.error, ValueError, IndexError):
                pass

    def address(self, bay: int, unit: int) -> ipaddress.IPv4Interface | None:
        return self.config.addresses().get(self.interface_name(bay, unit))

    def ethernet_frame(self, bay: int, unit: int, frame: bytes) -> None:
        address = self.address(bay, unit)
        if address is None or len(frame) < 14:
            return
        mine = self.mac(bay, unit)
        dst, src, ethertype = frame[:6], frame[6:12], struct.unpack_from(">H", frame, 12)[0]
        if dst not in (mine, BROADCAST):
            return
        ip = address.ip.packed
        if ethertype == 0x0806:
            op = struct.unpack_from(">H", frame, 20)[0]
            sender_mac, sender_ip, target_ip = frame[22:28], frame[28:32], frame[38:42]
            with lock:
                self.arp[sender_ip] = sender_mac
                self.event.notify_all()
            if op == 1 and target_ip == ip:
                reply = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 2) + mine + ip + sender_mac + sender_ip
                self.send(bay, unit, src + mine + b"\x08\x06" + reply)
        elif ethertype == 0x0800:
            answer = self.ip_input(frame[14:], ip)
            if answer is not None:
                self.send(bay, unit, src + mine + b"\x08\x00" + answer)

    def ip_input(self, packet: bytes, ip: bytes) -> bytes | None:
        """Answer an ICMP echo to us; note echo replies for a running ping."""
        length = (packet[0] & 0x0F) * 4
        if packet[9] != 1 or packet[16:20] != ip:
            return None
        body = packet[length:struct.unpack_from(">H", packet, 2)[0]]
        kind, _code, _sum, ident, seq = struct.unpack_from(">BBHHH", body)
        if kind == 8:
            return ip_packet(ip, packet[12:16], 1, icmp(0, ident, seq, body[8:]))
        if kind == 0:
            with lock:
                self.replies[(ident, seq)] = time.monotonic()
                self.event.notify_all()
        return None

    def serial_frame(self, bay: int, unit: int, frame: bytes) -> None:
        address = self.address(bay, unit)
        if address is None or len(frame) < 4:
            return
        protocol = struct.unpack_from(">H", frame, 2)[0]
        if protocol == 0x8035:  # SLARP
            op = struct.unpack_from(">I", frame, 4)[0]
            if op == 0:
                reply = struct.pack(">I4s4sH", 1, address.ip.packed, address.netmask.packed, 0xFFFF)
                self.send(bay, unit, b"\x8f\x00\x80\x35" + reply)
        elif protocol == 0x0800:
            answer = self.ip_input(frame[4:], address.ip.packed)
            if answer is not None:
                self.send(bay, unit, b"\x0f\x00\x08\x00" + answer)

    def ping(self, target: str, count: int = 5, timeout: float = 1.0) -> tuple[int, int]:
        destination = ipaddress.IPv4Address(target)
        for name, address in self.config.addresses().items():
            if destination in address.network and name.startswith("Ethernet"):
                break
        else:
            return 0, 0
        bay, unit = self.port_of(name)
        mine, ip, dst = self.mac(bay, unit), address.ip.packed, destination.packed
        deadline = time.monotonic() + 2 * timeout
        with lock:
            while dst not in self.arp and time.monotonic() < deadline:
                lock.release()
                request = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mine + ip + bytes(6) + dst
                self.send(bay, unit, BROADCAST + mine + b"\x08\x06" + request)
                lock.acquire()
                self.event.wait(0.5)
            peer_mac = self.arp.get(dst)
        received = 0
        self.ping_id = getattr(self, "ping_id", 0) + 1  # a fresh ICMP identifier per ping command
        for seq in range(count):
            if peer_mac is None:
                break
            packet = ip_packet(ip, dst, 1, icmp(8, self.ping_id, seq, b"IOU stand-in ping" * 4), seq)
            self.send(bay, unit, peer_mac + mine + b"\x08\x00" + packet)
            end = time.monotonic() + timeout
            with lock:
                while (self.ping_id, seq) not in self.replies and time.monotonic() < end:
                    self.event.wait(end - time.monotonic())
                if (self.ping_id, seq) in self.replies:
                    received += 1
        return received, count


# -- console -------------------------------------------------------------------------------------------------------


def bind(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock


class Console:
    def __init__(self, appid: int, router: Router) -> None:
        self.router = router
        self.sock = bind(f"{NETIO}/ttyS{appid}")
        self.peer = f"{NETIO}/ttyC{appid}"
        self.line = bytearray()
        self.mode = "exec"
        self.interface = ""

    def out(self, text: str) -> None:
        data = text.replace("\n", "\r\n").encode()
        for start in range(0, len(data), 1024):
            try:
                self.sock.sendto(data[start:start + 1024], self.peer)
            except OSError:
                pass  # no console client (the server's side is not there)

    def prompt(self) -> str:
        suffix = {"exec": "#", "config": "(config)#", "interface": "(config-if)#"}[self.mode]
        return self.router.config.hostname + suffix

    def run(self) -> None:
        self.out(f"\nIOU stand-in (application id {self.router.appid}) ready\n\n{self.prompt()}")
        while True:
            data = self.sock.recv(4096)
            for byte in data:
                if byte in (13, 10):
                    if byte == 10 and not self.line and getattr(self, "_last", 0) == 13:
                        continue
                    line = self.line.decode(errors="replace").strip()
                    self.line.clear()
                    self.out("\n")
                    self.execute(line)
                    self.out(self.prompt())
                elif byte in (8, 127):
                    if self.line:
                        self.line.pop()
                        self.out("\b \b")
                elif byte >= 32:
                    self.line.append(byte)
                    self.out(chr(byte))
                self._last = byte

    def execute(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        config = self.router.config
        if self.mode != "exec":
            if words[0] == "end":
                self.mode = "exec"
            elif words[0] == "exit":
                self.mode = "config" if self.mode == "interface" else "exec"
            elif words[0] == "hostname" and len(words) == 2:
                config.set_global("hostname ", f"hostname {words[1]}")
            elif words[0] == "interface" and len(words) == 2 and self.router.port_of(words[1]):
                self.interface = words[1]
                config.interface_block(words[1])
                self.mode = "interface"
            elif self.mode == "interface" and words[:2] == ["ip", "address"] and len(words) == 4:
                config.set_in_interface(self.interface, "ip address", " ".join(words))
            elif self.mode == "interface" and words in (["no", "shutdown"], ["shutdown"]):
                config.set_in_interface(self.interface, "shutdown", None if words[0] == "no" else "shutdown")
            else:
                self.out("% Invalid input detected\n")
            return
        if words[:2] in (["configure", "terminal"], ["conf", "t"]):
            self.mode = "config"
            self.out("Enter configuration commands, one per line.  End with CNTL/Z.\n")
        elif words[:2] in (["show", "running-config"], ["sh", "run"]):
            self.out(config.text())
        elif words[:2] == ["show", "version"]:
            self.out(f"IOU stand-in (gns3core tests), application id {self.router.appid}, "
                     f"{self.router.ethernet} Ethernet and {self.router.serial} serial bays\n")
        elif words[:4] == ["show", "ip", "interface", "brief"]:
            for name, address in sorted(config.addresses().items()):
                self.out(f"{name:<22} {address.ip}\n")
        elif words in (["write"], ["write", "memory"], ["wr"], ["copy", "running-config", "startup-config"]):
            self.out("Building configuration...\n")
            self.router.nvram.save(config.text().encode())
            self.out("[OK]\n")
        elif words[0] == "ping" and len(words) >= 2:
            try:
                received, sent = self.router.ping(words[1])
            except ValueError:
                self.out("% Unrecognized host or address\n")
                return
            self.out(f"Sending {sent}, 100-byte ICMP Echos to {words[1]}, timeout is 1 seconds:\n")
            self.out(f"Success rate is {received * 100 // max(sent, 1)} percent ({received}/{sent})\n")
        elif words[0] in ("enable", "terminal"):
            pass
        else:
            self.out("% Invalid input detected\n")


# -- main ----------------------------------------------------------------------------------------------------------


def main() -> None:
    try:
        options, rest = getopt.getopt(sys.argv[1:], "e:s:n:m:Llhq")
    except getopt.GetoptError as exc:
        fail(f"{exc}\n{HELP}")
    values = dict(options)
    if "-h" in values:
        say(HELP)
        sys.exit(0)
    if "-l" in values and PROFILE == "no-l1":
        fail("invalid option -- 'l'\n" + HELP)
    if len(rest) != 1 or not rest[0].isdigit() or not 1 <= int(rest[0]) <= 1023:
        fail("an application id (1-1023) is required\n" + HELP)
    if "-L" not in values:
        fail("this stand-in has no local console: start it with -L")
    appid = int(rest[0])
    ethernet, serial = int(values.get("-e", 2)), int(values.get("-s", 2))
    if ethernet + serial > 16:
        fail("too many interfaces (at most 16 bays)")
    check_licence()
    say(f"IOU stand-in (gns3core tests): application id {appid}, {ethernet} Ethernet, {serial} serial bays, "
        f"nvram {values.get('-n', 64)} KB, ram {values.get('-m', 256)} MB, argv {sys.argv[1:]}")
    nvram = Nvram(f"nvram_{appid:05d}", int(values.get("-n", 64)))
    nvram.load()
    config = Config(nvram.startup.decode(errors="replace"))
    os.makedirs(NETIO, exist_ok=True)
    router = Router(appid, ethernet, serial, config, nvram)
    router.read_netmap()
    console = Console(appid, router)
    threading.Thread(target=console.run, daemon=True).start()

    def leave(signum, _frame):
        for path in (f"{NETIO}/{appid}", f"{NETIO}/ttyS{appid}"):
            try:
                os.unlink(path)
            except OSError:
                pass
        say(f"stand-in: signal {signum}, exiting")
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    router.run()


if __name__ == "__main__":
    main()
