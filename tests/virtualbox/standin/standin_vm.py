"""A "running VM" of the VBoxManage stand-in: the process `startvm` leaves behind. Test equipment, not VirtualBox.

It plays the part of VirtualBox's VM process just enough for a network emulator to drive it:

* serial port 1 in server mode: a UNIX stream socket at the configured path, one client at a time (a second one
  waits), with a small shell (`help`, `hostname`, `ip`, `echo`, `uname`, `poweroff`);
* each adapter attached to the `generic` driver `UDPTunnel` binds UDP `sport` and sends every frame to
  `dest:dport`, one bare Ethernet frame per datagram, as VirtualBox's UDPTunnel driver does;
* the guest answers ARP and ICMP echo for the address in extra data `VBoxStandIn/GuestIP` or guest property
  `/VBoxStandIn/GuestIP` (or `ip addr add` on the console), on every adapter;
* `nictrace<n>` on writes a pcap of the adapter's frames to `nictracefile<n>`, as VirtualBox's network sniffer does;
* `controlvm` reaches it over the abstract UNIX socket `vbox-standin-<uuid>` (pause, resume, reset, poweroff,
  acpipowerbutton, nic, nicproperty, setlinkstate, nictrace, guestproperty).

It records its run state in `standin-sessions/<uuid>.state` and, on a clean power-off, `<uuid>.exit`; killed, it
leaves a session VBoxManage reports as `aborted`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from standin_machines import NIC, Machine, Registry, write_file

log = logging.getLogger("standin-vm")

BROADCAST = b"\xff" * 6
ETH_ARP, ETH_IPV4 = 0x0806, 0x0800
BANNER = "VirtualBox VM stand-in (a test double, not Oracle VM VirtualBox)"
ACPI_DELAY = 0.3


class Pcap:
    """A classic pcap file (Ethernet), flushed per frame so it can be read while the VM runs."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - open while the trace runs
        self.handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.handle.flush()

    def write(self, frame: bytes) -> None:
        now = time.time()
        self.handle.write(struct.pack("<IIII", int(now), int((now % 1) * 1e6), len(frame), len(frame)) + frame)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Adapter(asyncio.DatagramProtocol):
    """One network adapter of the guest and, when attached to UDPTunnel, its tunnel socket."""

    def __init__(self, guest: Guest, slot: int, nic: NIC) -> None:
        self.guest = guest
        self.slot = slot
        self.nic = nic
        self.mac = bytes.fromhex(nic.mac)
        self.transport: asyncio.DatagramTransport | None = None
        self.destination: tuple[str, int] | None = None
        self.pcap: Pcap | None = None

    async def attach(self) -> None:
        """(Re)open the tunnel as the adapter's settings say now; a bind failure is the VM's error."""
        self.detach()
        nic = self.nic
        if nic.attachment != "generic" or nic.generic_driver != "UDPTunnel":
            return
        props = nic.properties
        sport = int(props.get("sport", "10001"))
        dest, dport = props.get("dest", "127.0.0.1"), int(props.get("dport", "10002"))
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(dest, dport, type=socket.SOCK_DGRAM, family=socket.AF_INET)
        self.destination = infos[0][4]
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("0.0.0.0", sport))
        log.info("nic%d: UDPTunnel sport=%d dest=%s dport=%d", self.slot, sport, dest, dport)

    def detach(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def set_trace(self) -> None:
        if self.pcap is not None:
            self.pcap.close()
            self.pcap = None
        if self.nic.trace and self.nic.tracefile:
            try:
                self.pcap = Pcap(self.nic.tracefile)
            except OSError as exc:
                log.error("nic%d: cannot write the trace %s: %s", self.slot, self.nic.tracefile, exc)

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.nic.cable or self.guest.paused:
            return
        if self.pcap is not None:
            self.pcap.write(data)
        reply = self.guest.answer(self, data)
        if reply is not None:
            self.send(reply)

    def send(self, frame: bytes) -> None:
        if self.transport is None or self.destination is None or not self.nic.cable:
            return
        if self.pcap is not None:
            self.pcap.write(frame)
        self.transport.sendto(frame, self.destination)


class Guest:
    def __init__(self, registry: Registry, machine: Machine) -> None:
        self.registry = registry
        self.machine = machine
        self.paused = False
        self.ip: bytes | None = None
        self.adapters = {slot: Adapter(self, slot, nic) for slot, nic in machine.nics.items()
                         if nic.attachment != "none"}
        self.stopped = asyncio.Event()
        self.clean_exit = False
        self.console_lock = asyncio.Lock()
        self.console_writer: asyncio.StreamWriter | None = None
        self.serial_server: asyncio.Server | None = None
        self.control_server: asyncio.Server | None = None
        address = machine.guestproperties.get("/VBoxStandIn/GuestIP") or machine.extradata.get("VBoxStandIn/GuestIP")
        if address:
            self.set_ip(address)

    @property
    def hostname(self) -> str:
        return self.machine.guestproperties.get("NameInGNS3") or self.machine.name

    @property
    def sessions(self) -> Path:
        return self.registry.sessions

    def set_ip(self, text: str | None) -> None:
        self.ip = None if not text else ipaddress.IPv4Interface(text.strip()).ip.packed

    def write_state(self, state: str) -> None:
        write_file(self.sessions / f"{self.machine.uuid}.state", state.encode())

    # -- packets -----------------------------------------------------------------------------------------------------

    def answer(self, adapter: Adapter, frame: bytes) -> bytes | None:
        """The guest's reply to a frame: ARP for its address, ICMP echo to it; None for anything else."""
        if len(frame) < 14 or self.ip is None or frame[0:6] not in (adapter.mac, BROADCAST):
            return None
        ethertype = struct.unpack("!H", frame[12:14])[0]
        payload = frame[14:]
        if ethertype == ETH_ARP and len(payload) >= 28:
            op = struct.unpack("!H", payload[6:8])[0]
            sender_mac, sender_ip, target_ip = payload[8:14], payload[14:18], payload[24:28]
            if op != 1 or target_ip != self.ip:
                return None
            arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + adapter.mac + self.ip + sender_mac + sender_ip
            return (sender_mac + adapter.mac + struct.pack("!H", ETH_ARP) + arp).ljust(60, b"\x00")
        if ethertype == ETH_IPV4 and len(payload) >= 20 and frame[0:6] == adapter.mac:
            header_length = (payload[0] & 0x0F) * 4
            total = struct.unpack("!H", payload[2:4])[0]
            if payload[9] != 1 or payload[16:20] != self.ip or len(payload) < total:
                return None
            icmp = payload[header_length:total]
            if len(icmp) < 8 or icmp[0] != 8:
                return None
            reply_icmp = b"\x00\x00\x00\x00" + icmp[4:]
            reply_icmp = reply_icmp[:2] + struct.pack("!H", checksum(reply_icmp)) + reply_icmp[4:]
            header = bytearray(payload[:20])
            header[8] = 64
            header[10:12] = b"\x00\x00"
            header[12:16], header[16:20] = payload[16:20], payload[12:16]
            header[0] = 0x45
            header[2:4] = struct.pack("!H", 20 + len(reply_icmp))
            header[10:12] = struct.pack("!H", checksum(bytes(header)))
            return frame[6:12] + adapter.mac + struct.pack("!H", ETH_IPV4) + bytes(header) + reply_icmp
        return None

    # -- serial console ----------------------------------------------------------------------------------------------

    def console_print(self, text: str) -> None:
        writer = self.console_writer
        if writer is not None and not writer.is_closing():
            writer.write(text.replace("\n", "\r\n").encode())

    def prompt(self) -> str:
        return f"{self.hostname}:~# "

    def run_command(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        command, rest = words[0], words[1:]
        if command == "help":
            return "commands: help, hostname, ip [addr [add <address>]], echo <text>, uname [-a], poweroff\n"
        if command == "hostname":
            return self.hostname + "\n"
        if command == "uname":
            return BANNER + "\n"
        if command == "echo":
            return " ".join(rest) + "\n"
        if command == "ip":
            if rest[:2] == ["addr", "add"] and len(rest) == 3:
                try:
                    self.set_ip(rest[2])
                except ValueError:
                    return f"ip: invalid address {rest[2]}\n"
                return ""
            address = "none" if self.ip is None else str(ipaddress.IPv4Address(self.ip))
            return "".join(f"eth{slot - 1}: link/ether {a.nic.mac} {a.nic.attachment} address {address}\n"
                           for slot, a in sorted(self.adapters.items()))
        if command == "poweroff":
            asyncio.get_running_loop().call_later(0.1, self.shutdown, True)
            return "The system is going down NOW!\n"
        return f"sh: {command}: not found\n"

    async def serve_console(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.console_lock:  # a serial port has one client at a time: the next waits
            self.console_writer = writer
            line = bytearray()
            try:
                while data := await reader.read(1024):
                    if self.paused:
                        continue
                    for byte in data:
                        if byte in (13, 10):
                            writer.write(b"\r\n")
                            self.console_print(self.run_command(line.decode(errors="replace")) + self.prompt())
                            line.clear()
                        elif byte in (8, 127):
                            if line:
                                line.pop()
                                writer.write(b"\b \b")
                        elif byte >= 32:
                            line.append(byte)
                            writer.write(bytes([byte]))
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                self.console_writer = None
                writer.close()

    # -- control -----------------------------------------------------------------------------------------------------

    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            try:
                reply = await self.control(request)
            except (OSError, ValueError, KeyError) as exc:
                reply = {"error": f"{request.get('cmd')}: {exc}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def control(self, request: dict) -> dict:
        command = request["cmd"]
        adapter = self.adapters.get(request.get("slot", 0))
        if command in ("nic", "nicproperty", "setlinkstate", "nictrace", "nictracefile") and adapter is None:
            return {"error": f"Network adapter {request.get('slot')} is disabled"}
        if command == "pause":
            self.paused = True
            self.write_state("paused")
        elif command == "resume":
            self.paused = False
            self.write_state("running")
        elif command == "reset":
            self.paused = False
            self.write_state("running")
            self.console_print(f"\n{BANNER}: reset\n{self.prompt()}")
        elif command == "poweroff":
            asyncio.get_running_loop().call_soon(self.shutdown, True)
        elif command == "acpipowerbutton":
            if self.machine.extradata.get("VBoxStandIn/IgnoreACPI") != "1":
                self.console_print("\nPower button pressed: the system is going down\n")
                asyncio.get_running_loop().call_later(ACPI_DELAY, self.shutdown, True)
        elif command == "nic":
            adapter.nic.attachment = request["attachment"]
            if request["attachment"] == "generic":
                adapter.nic.generic_driver = request["driver"]
            await adapter.attach()
        elif command == "nicproperty":
            adapter.nic.properties[request["name"]] = request["value"]
            await adapter.attach()
        elif command == "setlinkstate":
            adapter.nic.cable = request["value"]
        elif command == "nictrace":
            adapter.nic.trace = request["value"]
            adapter.set_trace()
        elif command == "nictracefile":
            adapter.nic.tracefile = request["value"]
            adapter.set_trace()
        elif command == "guestproperty":
            name, value = request["name"], request["value"]
            if value is None:
                self.machine.guestproperties.pop(name, None)
            else:
                self.machine.guestproperties[name] = value
            if name == "/VBoxStandIn/GuestIP":
                self.set_ip(value)
        else:
            return {"error": f"unknown command {command}"}
        return {"ok": True}

    # -- life --------------------------------------------------------------------------------------------------------

    async def run(self) -> int:
        uart = self.machine.uart
        if uart.enabled and uart.mode == "server" and uart.path:
            Path(uart.path).unlink(missing_ok=True)
            try:
                self.serial_server = await asyncio.start_unix_server(self.serve_console, uart.path)
            except OSError as exc:
                log.error("serial port 1: cannot create the server socket %s: %s", uart.path, exc)
                return 1
        for adapter in self.adapters.values():
            adapter.set_trace()
            try:
                await adapter.attach()
            except OSError as exc:
                log.error("nic%d: the UDPTunnel driver cannot start: %s", adapter.slot, exc)
                return 1
        control = self.registry.control_socket(self.machine)
        self.control_server = await asyncio.start_unix_server(self.serve_control, control)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.shutdown, True)  # VBoxHeadless powers off on SIGTERM
        self.write_state("running")
        log.info("%s: '%s' {%s} is running", BANNER, self.machine.name, self.machine.uuid)
        await self.stopped.wait()
        for server in (self.serial_server, self.control_server):
            if server is not None:
                server.close()
        for adapter in self.adapters.values():
            adapter.detach()
            if adapter.pcap is not None:
                adapter.pcap.close()
        if uart.enabled and uart.mode == "server" and uart.path:
            Path(uart.path).unlink(missing_ok=True)
        (self.sessions / f"{self.machine.uuid}.state").unlink(missing_ok=True)
        if self.clean_exit:
            write_file(self.sessions / f"{self.machine.uuid}.exit", b"poweroff")
        log.info("'%s' powered off", self.machine.name)
        return 0

    def shutdown(self, clean: bool) -> None:
        self.clean_exit = clean
        self.stopped.set()


def main(argv: list[str]) -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    machine_uuid = argv[argv.index("--startvm") + 1]
    registry = Registry().load()
    machine = registry.machine(machine_uuid)
    return asyncio.run(Guest(registry, machine).run())
