"""Helpers shared by the data plane tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import struct
import subprocess
import time

import pytest

from gns3core.testing.vpcs import VPCSProcess


def has_net_admin() -> bool:
    """True when this process may create namespaces and interfaces (CAP_NET_ADMIN in the effective set)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 12))
    except OSError:
        pass
    return False


def require_net_admin() -> None:
    """Skip (with the reason) when the host cannot run namespace tests."""
    if not has_net_admin():
        pytest.skip("needs CAP_NET_ADMIN (run as root or with the capability) to create namespaces and interfaces")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun (the tun kernel module) for TAP endpoints")
    if shutil.which("ip") is None:
        pytest.skip("needs the 'ip' command (apt package iproute2)")
    if shutil.which("busybox") is None:
        pytest.skip("needs busybox for ping inside namespaces (apt package busybox-static)")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command from an argument list and fail the test with its output when it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return proc


def unique(prefix: str) -> str:
    """A short random name (interface names are limited to 15 characters)."""
    return f"{prefix}{secrets.token_hex(3)}"




class UDPPeer:
    """A plain loopback UDP socket standing in for an emulator's NIO."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def recv_all(self, timeout: float = 0.5, limit: int | None = None) -> list[bytes]:
        """Everything that arrives until ``timeout`` passes without a frame (or ``limit`` frames arrived)."""
        frames = []
        self.sock.settimeout(timeout)
        try:
            while limit is None or len(frames) < limit:
                frames.append(self.sock.recv(65536))
        except TimeoutError:
            pass
        return frames

    def close(self) -> None:
        self.sock.close()




class Namespaces:
    """Creates ``gdp-<random>`` network namespaces and deletes them (and their interfaces) afterwards."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def add(self) -> str:
        name = unique("gdp-")
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def exec(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", name, *args, check=check)

    def anonymous(self) -> int:
        """A process sleeping in a fresh unnamed namespace, like a container; returns its PID."""
        proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
        self.procs.append(proc)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise AssertionError("unshare --net did not switch namespace")
            time.sleep(0.01)
        return proc.pid

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for link in self.links:
            run("ip", "link", "del", link, check=False)
        for name in self.names:
            run("ip", "netns", "del", name, check=False)




def free_udp_port(span: int = 10) -> int:
    """A port p such that UDP p and p+9 and TCP p are free (VPCS 0.5b2 also binds lport+9)."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(40000)
        socks = []
        try:
            for offset in (0, 9):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("0.0.0.0", port + offset))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(tcp)
            tcp.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free port found")


class VPCS(VPCSProcess):
    """vpcs named PC<number>, started at once with its address from startup.vpc (so both instances do their
    duplicate-address check in parallel); connect() waits for its console."""

    def __init__(self, workdir: str, number: int, lport: int, rport: int, address: str | None = None) -> None:
        startup = [f"set pcname PC{number}"] + ([f"ip {address}"] if address else [])
        super().__init__(workdir, free_udp_port(), lport, rport, mac_id=number, startup=startup)
        self.start()

    def connect(self, timeout: float = 10.0) -> None:
        self.wait_console(timeout)


def pcap_records(path: str) -> tuple[int, int]:
    """(link type, number of records) parsed by hand, since tshark accepts some garbage files."""
    with open(path, "rb") as file:
        data = file.read()
    magic, major, minor, _zone, _sig, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, snaplen) == (0xA1B2C3D4, 2, 4, 65535)
    offset, count = 24, 0
    while offset < len(data):
        _sec, _usec, caplen, _length = struct.unpack("<IIII", data[offset:offset + 16])
        offset += 16 + caplen
        count += 1
    assert offset == len(data), "truncated record"
    return linktype, count
