"""STAND-IN for a powered-on VMware VM (VMware's `vmware-vmx` process), for the tests only.

The stand-in vmrun starts it as `vmware-vmx -s standin.readyfd=<fd> ... <path of the .vmx>` (the VMX path last, as
VMware's own VM process has it), detached from vmrun. It reads the VMX the way VMware does at power-on and then:

* for every present, connected adapter `ethernet<i>` on a custom network, it creates the host interface VMware's
  vmnet driver would provide, `ethernet<i>.vnet` (e.g. `vmnet5`), as a TAP device it holds: frames the host sends
  on that interface reach this process, frames it writes appear on the interface. It vanishes with the process;
* behind each such adapter it plays a guest that answers ARP and ICMP echo for the address the VMX gives it in
  `standin.ethernet<i>.ip` (a key only the stand-in reads), from the MAC address VMware would generate, and writes
  that address back to the VMX as `ethernet<i>.generatedAddress`, as VMware does;
* it serves the first serial port, when the VMX makes it a pipe in server mode (`serial0.fileType = "pipe"`,
  `serial0.pipe.endPoint = "server"`), as a UNIX stream socket at `serial0.fileName` with a small shell;
* SIGTERM powers it off, SIGUSR1/SIGUSR2 pause and unpause it (a paused guest answers nothing), SIGHUP resets it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import selectors
import signal
import socket
import struct
import sys
from pathlib import Path

from standin_vmrun import STANDIN_NOTE, append_settings, read_settings

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
ETH_ARP, ETH_IPV4 = 0x0806, 0x0800


class PowerOnError(Exception):
    """What VMware would refuse the power-on for."""


def mac_for(vmx: str, adapter: int) -> bytes:
    digest = hashlib.sha1(os.fsencode(os.path.realpath(vmx))).digest()
    return bytes([0x00, 0x0C, 0x29, digest[0], digest[1], (digest[2] + adapter) & 0xFF])


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class GuestAdapter:
    """One adapter: the vmnet TAP device on the host side, a guest with one IPv4 address on the VM side."""

    def __init__(self, number: int, vmnet: str, mac: bytes, ip: str | None) -> None:
        self.number = number
        self.vmnet = vmnet
        self.mac = mac
        self.ip = socket.inet_aton(ip) if ip else None
        self.fd = -1

    def open(self) -> None:
        try:
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            raise PowerOnError(f"Could not connect Ethernet{self.number} to {self.vmnet}: /dev/net/tun: "
                               f"{exc.strerror}") from None
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", self.vmnet.encode(), IFF_TAP | IFF_NO_PI))
        except OSError as exc:
            os.close(self.fd)
            reason = "it is in use" if exc.errno == errno.EBUSY else exc.strerror
            raise PowerOnError(f"Could not connect Ethernet{self.number} to virtual network {self.vmnet}: "
                               f"{reason}") from None
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{self.vmnet}/disable_ipv6").write_text("1")  # no host chatter
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH", self.vmnet.encode(),
                                                                                     0)))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", self.vmnet.encode(), flags | IFF_UP))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def answer(self, frame: bytes) -> bytes | None:
        """The guest's reply to a frame, if it has one (ARP request or ICMP echo request for its address)."""
        if self.ip is None or len(frame) < 14:
            return None
        dst, src, ethertype = frame[:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
        if dst not in (self.mac, b"\xff" * 6):
            return None
        if ethertype == ETH_ARP and len(frame) >= 42:
            op = struct.unpack("!H", frame[20:22])[0]
            sender_mac, sender_ip, target_ip = frame[22:28], frame[28:32], frame[38:42]
            if op == 1 and target_ip == self.ip:
                arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + self.mac + self.ip + sender_mac + sender_ip
                return src + self.mac + struct.pack("!H", ETH_ARP) + arp + b"\0" * 18
        if ethertype == ETH_IPV4 and len(frame) >= 34 and dst == self.mac:
            header_length = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            ip = frame[14:14 + total]
            if ip[9] != 1 or ip[16:20] != self.ip or len(ip) < header_length + 8 or ip[header_length] != 8:
                return None
            icmp = bytearray(ip[header_length:])
            icmp[0] = 0  # echo reply
            icmp[2:4] = b"\0\0"
            icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
            header = bytearray(ip[:header_length])
            header[8] = 64
            header[12:16], header[16:20] = ip[16:20], ip[12:16]
            header[10:12] = b"\0\0"
            header[10:12] = struct.pack("!H", checksum(bytes(header)))
            return src + self.mac + struct.pack("!H", ETH_IPV4) + bytes(header) + bytes(icmp)
        return None


class SerialConsole:
    """The first serial port as a pipe in server mode: one client at a time, a prompt and a few commands."""

    def __init__(self, path: str, hostname: str, adapters: list[GuestAdapter]) -> None:
        self.path = path
        self.hostname = hostname
        self.adapters = adapters
        self.listener: socket.socket | None = None
        self.client: socket.socket | None = None
        self.line = b""

    def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
        except OSError as exc:
            listener.close()
            raise PowerOnError(f"Could not open the serial port pipe {self.path}: {exc.strerror}") from None
        listener.listen(4)
        listener.setblocking(False)
        self.listener = listener

    def close(self) -> None:
        for sock in (self.client, self.listener):
            if sock is not None:
                sock.close()
        self.client = self.listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def say(self, text: str) -> None:
        if self.client is not None:
            with contextlib.suppress(OSError):
                self.client.sendall(text.encode())

    def typed(self, data: bytes) -> None:
        for byte in data:
            char = bytes([byte])
            if char in (b"\r", b"\n"):
                self.say("\r\n")
                self.run(self.line.decode(errors="replace").strip())
                self.line = b""
            elif char in (b"\x7f", b"\x08"):
                self.line = self.line[:-1]
            else:
                self.line += char
                self.say(char.decode(errors="replace"))

    def run(self, command: str) -> None:
        word, _, rest = command.partition(" ")
        if word == "hostname":
            self.say(f"{self.hostname}\r\n")
        elif word == "echo":
            self.say(f"{rest}\r\n")
        elif word == "ip":
            for adapter in self.adapters:
                ip = socket.inet_ntoa(adapter.ip) if adapter.ip else "-"
                self.say(f"eth{adapter.number} {ip} {mac_text(adapter.mac)} ({adapter.vmnet})\r\n")
        elif word:
            self.say(f"sh: {word}: not found\r\n")
        self.say(f"{self.hostname}$ ")


class StandinVM:
    def __init__(self, vmx: str, settings: dict[str, str], state_dir: str) -> None:
        self.vmx = vmx
        self.state_dir = state_dir
        self.settings = settings
        self.adapters: list[GuestAdapter] = []
        self.console: SerialConsole | None = None
        self.paused = False
        self.stopping = False

    def is_true(self, key: str) -> bool:
        return self.settings.get(key, "").upper() == "TRUE"

    def power_on(self) -> None:
        if "config.version" not in self.settings and "virtualhw.version" not in self.settings:
            raise PowerOnError(f"{self.vmx} is not a virtual machine configuration file")
        generated = {}
        for i in range(10):
            prefix = f"ethernet{i}"
            if not self.is_true(f"{prefix}.present") or self.settings.get(f"{prefix}.startconnected",
                                                                            "TRUE").upper() == "FALSE":
                continue
            connection = self.settings.get(f"{prefix}.connectiontype", "bridged").lower()
            mac = mac_for(self.vmx, i + int(self.settings.get(f"{prefix}.generatedaddressoffset", "0") or 0))
            if self.settings.get(f"{prefix}.addresstype", "generated").lower() == "generated" and \
                    f"{prefix}.generatedaddress" not in self.settings:
                generated[f"{prefix}.generatedAddress"] = mac_text(mac)
            if connection != "custom":
                continue  # VMware's own bridged/NAT/host-only networks: nothing the tests look at
            vnet = self.settings.get(f"{prefix}.vnet", "")
            if not vnet:
                raise PowerOnError(f"Ethernet{i} is on a custom network but no virtual network is given")
            adapter = GuestAdapter(i, vnet.rsplit("/", 1)[-1].lower(), mac, self.settings.get(f"standin.{prefix}.ip"))
            adapter.open()
            self.adapters.append(adapter)
            with open(Path(self.state_dir) / "interfaces.log", "a") as log:  # for the tests' clean-up check
                log.write(adapter.vmnet + "\n")
        if generated:
            append_settings(self.vmx, generated)
        if self.is_true("serial0.present") and self.settings.get("serial0.filetype", "").lower() == "pipe" and \
                self.settings.get("serial0.pipe.endpoint", "server").lower() == "server":
            hostname = "".join(c if c.isalnum() or c == "-" else "-" for c in
                               self.settings.get("displayname", "guest")) or "guest"
            self.console = SerialConsole(self.settings.get("serial0.filename", ""), hostname, self.adapters)
            self.console.open()

    def power_off(self) -> None:
        for adapter in self.adapters:
            adapter.close()
        if self.console is not None:
            self.console.close()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig, action in ((signal.SIGTERM, "stop"), (signal.SIGUSR1, "pause"), (signal.SIGUSR2, "unpause"),
                            (signal.SIGHUP, "reset")):
            signal.signal(sig, lambda _s, _f, action=action: self.on_signal(action))
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        for adapter in self.adapters:
            selector.register(adapter.fd, selectors.EVENT_READ, adapter)
        if self.console is not None and self.console.listener is not None:
            selector.register(self.console.listener, selectors.EVENT_READ, "accept")
        while not self.stopping:
            for key, _ in selector.select():
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 64)
                elif key.data == "accept":
                    self.accept(selector)
                elif key.data == "client":
                    self.client_readable(selector)
                else:
                    self.frames(key.data)

    def on_signal(self, action: str) -> None:
        if action == "stop":
            self.stopping = True
        elif action == "pause":
            self.paused = True
        elif action == "unpause":
            self.paused = False
        elif action == "reset":
            self.paused = False
            if self.console is not None:
                self.console.say(f"\r\n{STANDIN_NOTE} guest reset\r\n")

    def frames(self, adapter: GuestAdapter) -> None:
        while True:
            try:
                frame = os.read(adapter.fd, 65536)
            except BlockingIOError:
                return
            if self.paused:
                continue
            reply = adapter.answer(frame)
            if reply is not None:
                with contextlib.suppress(OSError):
                    os.write(adapter.fd, reply)

    def accept(self, selector: selectors.BaseSelector) -> None:
        console = self.console
        assert console is not None and console.listener is not None
        if console.client is not None:
            return  # one client at a time: the others wait in the backlog
        try:
            client, _ = console.listener.accept()
        except BlockingIOError:
            return
        console.client = client
        selector.unregister(console.listener)
        selector.register(client, selectors.EVENT_READ, "client")

    def client_readable(self, selector: selectors.BaseSelector) -> None:
        console = self.console
        assert console is not None and console.client is not None
        try:
            data = console.client.recv(4096)
        except OSError:
            data = b""
        if not data:
            selector.unregister(console.client)
            console.client.close()
            console.client = None
            console.line = b""
            selector.register(console.listener, selectors.EVENT_READ, "accept")
            return
        if not self.paused:
            console.typed(data)


def main(argv: list[str], state_dir: str) -> int:
    options = {}
    args = list(argv)
    while len(args) >= 2 and args[0] == "-s":
        key, _, value = args[1].partition("=")
        options[key] = value
        args = args[2:]
    if len(args) != 1:
        print(f"vmware-vmx {STANDIN_NOTE}: usage: vmware-vmx [-s key=value]... <vmx>", file=sys.stderr)
        return 2
    vmx = args[0]
    ready_fd = int(options.get("standin.readyfd", "-1"))

    def tell(text: str) -> None:
        if ready_fd >= 0:
            os.write(ready_fd, text.encode() + b"\n")
            os.close(ready_fd)

    print(f"vmware-vmx {STANDIN_NOTE}: powering on {vmx}", flush=True)
    vm = StandinVM(vmx, {}, state_dir)
    try:
        vm.settings = read_settings(vmx)
        vm.power_on()
    except (PowerOnError, OSError) as exc:
        vm.power_off()
        print(f"vmware-vmx {STANDIN_NOTE}: power-on failed: {exc}", flush=True)
        tell(f"error: {exc}")
        return 1
    tell("ok")
    print(f"vmware-vmx {STANDIN_NOTE}: powered on, adapters {[a.vmnet for a in vm.adapters]}", flush=True)
    try:
        vm.run()
    finally:
        vm.power_off()
        print(f"vmware-vmx {STANDIN_NOTE}: powered off", flush=True)
    return 0
