"""Test helpers: real VPCS processes wired to switch ports over UDP, driven through their telnet console."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gns3core.testing import require
from gns3core.testing.telnet import strip_telnet

_taken: set[int] = set()


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_udp_port() -> int:
    """A UDP port that is free together with port+9 (vpcs 0.5b2 binds lport+9 too), never handed out twice."""
    for _ in range(1000):
        port = random.randrange(30000, 39000)
        block = set(range(port, port + 10))
        if block & _taken:
            continue
        if _udp_free(port) and _udp_free(port + 9):
            _taken.update(block)
            return port
    raise RuntimeError("no free UDP port")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VPC:
    """One vpcs process: its console port, its UDP tunnel (lport on its side, rport on the switch's side)."""

    ip: str
    console: int
    lport: int
    rport: int
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    mac_id: int = 1
    log: list[str] = field(default_factory=list)

    def nio(self) -> dict:
        """The NIO of the switch port this VPC plugs into (the switch listens on rport, sends to lport)."""
        return {"type": "nio_udp", "lport": self.rport, "rhost": "127.0.0.1", "rport": self.lport}

    async def command(self, line: str, timeout: float = 20.0) -> str:
        """Run one console command and return its output (up to the next prompt)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.console), 5)
        try:
            await self._read_until(reader, lambda text: "VPCS>" in text, 10)
            writer.write(line.encode() + b"\n")
            await writer.drain()

            def done(text: str) -> bool:
                _, _, after = text.partition(line)
                return "VPCS>" in after

            text = await self._read_until(reader, done, timeout)
            output = text.partition(line)[2]
            self.log.append(output)
            return output
        finally:
            writer.close()

    @staticmethod
    async def _read_until(reader: asyncio.StreamReader, done, timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = b""
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), max(0.05, deadline - loop.time()))
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if done(strip_telnet(data).decode(errors="replace")):
                break
        return strip_telnet(data).decode(errors="replace")

    async def ping(self, target: str, count: int = 3) -> int:
        """Number of echo replies received (0.5b2 prints `<ip> icmp_seq=N ttl=64 time=...`)."""
        text = await self.command(f"ping {target} -c {count}", timeout=10 + 3 * count)
        return len(re.findall(rf"{re.escape(target)} icmp_seq=\d+ ttl=\d+", text))


def plan_vpc(tmp: Path, ip: str, mac_id: int) -> VPC:
    """Choose a VPC's ports and write its startup script, without starting it (so its link can be wired first)."""
    vpc = VPC(ip=ip, console=free_tcp_port(), lport=free_udp_port(), rport=free_udp_port())
    vpc.workdir = tmp / f"vpc-{mac_id}"
    vpc.workdir.mkdir(parents=True, exist_ok=True)
    (vpc.workdir / "startup.vpc").write_text(f"ip {ip} 24\n")
    vpc.mac_id = mac_id
    return vpc


async def launch_vpc(vpcs: str, vpc: VPC) -> VPC:
    """Start a planned VPC and wait for its console."""
    argv = [vpcs, "-p", str(vpc.console), "-m", str(vpc.mac_id), "-i", "1", "-F", "-s", str(vpc.lport),
            "-c", str(vpc.rport), "-t", "127.0.0.1", "startup.vpc"]
    vpc.process = subprocess.Popen(argv, cwd=vpc.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", vpc.console), 0.2):
                return vpc
        except OSError:
            await asyncio.sleep(0.05)
    stop_vpc(vpc)
    raise RuntimeError(f"vpcs did not open its console on {vpc.console}")


async def start_vpc(vpcs: str, tmp: Path, ip: str, mac_id: int) -> VPC:
    return await launch_vpc(vpcs, plan_vpc(tmp, ip, mac_id))


def stop_vpc(vpc: VPC) -> None:
    """End vpcs and the virtual PC it forked (which lives in a session of its own, so signal it by pid)."""
    if vpc.process is None:
        return
    try:
        children = psutil.Process(vpc.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    if vpc.process.poll() is None:
        vpc.process.send_signal(signal.SIGTERM)
        try:
            vpc.process.wait(3)
        except subprocess.TimeoutExpired:
            vpc.process.kill()
            vpc.process.wait()
    psutil.wait_procs(children, timeout=3)


def require_program(name: str) -> str:
    """The program's path; skips when it is missing, except under CI where everything must be installed."""
    path = shutil.which(name)
    hint = "plugins/gns3-dynamips/install-dynamips.sh installs dynamips; apt-get install vpcs"
    require(path is not None, f"{name} is not installed ({hint})")
    return str(path)
