"""iouyap stand-in: what the tests run in place of iouyap when `[IOU] iouyap_path` names one (it is not iouyap).

Started as `iouyap -q <node id>` in the VM directory, like the real one: reads `iouyap.ini` (netmap, and one section
`[<node>:<bay>/<unit>]` per connected port with `tunnel_udp = lport:rhost:rport` and optionally `pcap_file`,
`pcap_protocol`, `pcap_overwrite`), reads NETMAP for the IOU port each of its ports faces, binds
/tmp/netio<uid>/<node id> and translates between IOU's netio framing and the UDP tunnels, writing pcap files as
asked. SIGHUP reloads iouyap.ini (links and captures change without a restart); SIGTERM ends it.
"""

from __future__ import annotations

import configparser
import os
import signal
import socket
import struct
import sys
import threading
import time

NETIO = f"/tmp/netio{os.geteuid()}"
LINKTYPES = {"ethernet": 1, "ppp": 50, "hdlc": 104, "fr": 107}


class Port:
    def __init__(self, owner: Iouyap, bay: int, unit: int, peer: tuple[int, int, int], tunnel: str) -> None:
        lport, rest = tunnel.split(":", 1)
        rhost, rport = rest.rsplit(":", 1)
        self.owner = owner
        self.bay, self.unit, self.peer = bay, unit, peer
        self.remote = (rhost, int(rport))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _attempt in range(50):
            try:
                self.sock.bind(("", int(lport)))
                break
            except OSError:
                time.sleep(0.02)  # the previous configuration's socket is still being released
        self.pcap = None
        self.alive = True
        threading.Thread(target=self.from_tunnel, daemon=True).start()

    def capture(self, path: str | None, protocol: str) -> None:
        if self.pcap is not None:
            self.pcap.close()
            self.pcap = None
        if path:
            self.pcap = open(path, "wb")  # noqa: SIM115 - kept open while capturing
            self.pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPES.get(protocol, 1)))
            self.pcap.flush()

    def record(self, frame: bytes) -> None:
        pcap = self.pcap
        if pcap is not None:
            now = time.time()
            pcap.write(struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(frame), len(frame)) + frame)
            pcap.flush()

    def from_tunnel(self) -> None:
        node, bay, unit = self.peer
        header = struct.pack(">HHBBBB", node, self.owner.node, bay | unit << 4, self.bay | self.unit << 4, 1, 0)
        while self.alive:
            try:
                frame = self.sock.recv(65536)
            except OSError:
                return
            if not self.alive or not frame:
                continue
            self.record(frame)
            try:
                self.owner.sock.sendto(header + frame, f"{NETIO}/{node}")
            except OSError:
                pass

    def to_tunnel(self, frame: bytes) -> None:
        self.record(frame)
        try:
            self.sock.sendto(frame, self.remote)
        except OSError:
            pass

    def close(self) -> None:
        self.alive = False
        self.capture(None, "")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader (a bare close would leave the port bound)
        except OSError:
            pass
        self.sock.close()


class Iouyap:
    def __init__(self, node: int) -> None:
        self.node = node
        self.ports: dict[tuple[int, int], Port] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def bind(self) -> None:
        """Bound once the configuration is loaded: the server takes the socket as the sign iouyap is up."""
        path = f"{NETIO}/{self.node}"
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)

    def netmap(self, path: str) -> dict[tuple[int, int], tuple[int, int, int]]:
        peers = {}
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                ends = [item.replace(":", "/").split("/") for item in line.split("#")[0].split()]
                if len(ends) != 2:
                    continue
                (n1, b1, u1), (n2, b2, u2) = ([int(x) for x in end] for end in ends)
                if n1 == self.node:
                    peers[(b1, u1)] = (n2, b2, u2)
                elif n2 == self.node:
                    peers[(b2, u2)] = (n1, b1, u1)
        return peers

    def load(self) -> None:
        config = configparser.ConfigParser()
        config.read("iouyap.ini")
        peers = self.netmap(config.get("default", "netmap", fallback="NETMAP"))
        with self.lock:
            for port in self.ports.values():
                port.close()
            self.ports = {}
            for section in config.sections():
                if section == "default":
                    continue
                node, _, where = section.partition(":")
                bay, unit = (int(x) for x in where.split("/"))
                if int(node) != self.node or (bay, unit) not in peers:
                    continue
                values = config[section]
                port = Port(self, bay, unit, peers[(bay, unit)], values["tunnel_udp"])
                port.capture(values.get("pcap_file"), values.get("pcap_protocol", "ethernet"))
                self.ports[(bay, unit)] = port
        print(f"iouyap stand-in: node {self.node}, {len(self.ports)} ports configured", flush=True)

    def run(self) -> None:
        while True:
            data = self.sock.recv(65536)
            if len(data) <= 8:
                continue
            dst, _src, dport, _sport, kind, _channel = struct.unpack_from(">HHBBBB", data)
            if dst & 0x7FF != self.node or kind != 1:
                continue
            with self.lock:
                port = self.ports.get((dport & 0x0F, dport >> 4))
            if port is not None:
                port.to_tunnel(data[8:])


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] != "-q" or not sys.argv[2].isdigit():
        print("usage: iouyap -q <node id>  (iouyap stand-in of the gns3core tests)", flush=True)
        sys.exit(1)
    yap = Iouyap(int(sys.argv[2]))
    reload_asked = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload_asked.set())

    def leave(*_):
        try:
            os.unlink(f"{NETIO}/{yap.node}")
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    yap.load()
    yap.bind()

    def reloader() -> None:
        while True:
            reload_asked.wait()
            reload_asked.clear()
            yap.load()

    threading.Thread(target=reloader, daemon=True).start()
    yap.run()


if __name__ == "__main__":
    main()
