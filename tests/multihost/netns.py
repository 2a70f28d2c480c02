"""Two "hosts" for multi-host tests: network namespaces joined by a veth, each running a real gns3server.

Everything the servers and their emulators send stays inside the two namespaces: the test reaches the servers' API
and consoles through sockets it opens from inside a namespace (a helper thread enters it with setns(2)), never by
routing from the machine's own namespace. Names embed the test process id, and everything is removed afterwards.
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from gns3core.testing.telnet import strip_telnet

CLONE_NEWNET = 0x40000000
SUBNET = "10.231.0"  # only ever configured inside the test's own namespaces
API_PORT = 18400


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def in_namespace(name: str, action: Callable[[], Any]) -> Any:
    """Run `action` in a thread that entered namespace `name`: sockets it opens belong to that namespace."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {name} failed")
            finally:
                os.close(fd)
            result["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def connect(namespace: str, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    return in_namespace(namespace, lambda: socket.create_connection((host, port), timeout=timeout))


class Host:
    """One namespace with its address, its server's configuration and its server process."""

    def __init__(self, name: str, address: str, workdir: Path) -> None:
        self.name, self.address, self.workdir = name, address, workdir
        self.password = secrets.token_hex(8)
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def write_config(self, **server: str) -> Path:
        values = {"host": self.address, "port": str(API_PORT), "auth": "true", "user": "admin",
                  "password": self.password, "projects_path": str(self.workdir / "projects"),
                  "images_path": str(self.workdir / "images"), "console_start_port_range": "5000",
                  "console_end_port_range": "5200", "udp_start_port_range": "20000", "udp_end_port_range": "20400",
                  **server}
        lines = ["[Server]", *(f"{k} = {v}" for k, v in values.items()),
                 "[Qemu]", "enable_kvm = false", "[Dynamips]", "switch_backend = dynamips"]
        path = self.workdir / "gns3_server.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, config: Path, timeout: float = 30.0) -> None:
        env = dict(os.environ, GNS3_PLUGINS="gns3-vpcs,gns3-qemu,gns3-dynamips")
        argv = ["ip", "netns", "exec", self.name, sys.executable, "-m", "gns3core", "--config", str(config)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gns3server in {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if self.api("GET", "/v1/version", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gns3server in {self.name} did not answer: {self.log.read_text()[-2000:]}")

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0,
            auth: bool = True) -> tuple[int, Any]:
        """One API call from inside the namespace: (status, decoded JSON or None)."""
        namespace, address = self.name, self.address

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = connect(namespace, address, API_PORT, timeout)

        connection = Connection(address, API_PORT, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if auth:
            token = base64.b64encode(f"admin:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            reply = connection.getresponse()
            raw = reply.read()
        finally:
            connection.close()
        return reply.status, (json.loads(raw) if raw and raw[:1] in (b"{", b"[") else None)

    def ok(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        status, data = self.api(method, path, body)
        assert status in expect, f"{method} {path} on {self.name}: {status} {data}"
        return data

    def stop(self) -> None:
        """SIGTERM (the server stops its emulators), then SIGKILL for whatever is left in its session."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def leftover_pids(self) -> list[int]:
        """Processes still running in the namespace."""
        try:
            out = run("ip", "netns", "pids", self.name)
        except RuntimeError:
            return []
        return [int(p) for p in out.split()]


class Console:
    """A telnet console (vpcs or a Qemu serial line) reached from inside a namespace."""

    def __init__(self, host: Host, port: int, prompt: str) -> None:
        self.sock = connect(host.name, host.address, port)
        self.prompt = prompt
        self.text = ""

    def read_until(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{marker!r} not seen within {timeout} s; console said: {self.text[-1500:]!r}")
            self.sock.settimeout(min(remaining, 1.0))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"console closed before {marker!r}: {self.text[-1500:]!r}")
            self.text += strip_telnet(data).decode(errors="replace").replace("\r", "")
        before, _, after = self.text.partition(marker)
        self.text = after
        return before

    def command(self, line: str, timeout: float = 30.0) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self.read_until(self.prompt, timeout)

    def close(self) -> None:
        self.sock.close()


class TwoHosts:
    """Namespaces `<prefix>a` and `<prefix>b` joined by a veth pair, addresses SUBNET.1 and SUBNET.2."""

    def __init__(self, tmp: Path) -> None:
        prefix = f"g3mh{os.getpid()}"
        self.veth = (f"{prefix}x", f"{prefix}y")
        self.a = Host(f"{prefix}a", f"{SUBNET}.1", tmp / "a")
        self.b = Host(f"{prefix}b", f"{SUBNET}.2", tmp / "b")

    def create(self) -> None:
        for host in (self.a, self.b):
            host.workdir.mkdir(parents=True, exist_ok=True)
            run("ip", "netns", "add", host.name)
            run("ip", "-n", host.name, "link", "set", "lo", "up")
        run("ip", "link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
        for host, veth in ((self.a, self.veth[0]), (self.b, self.veth[1])):
            run("ip", "link", "set", veth, "netns", host.name)
            run("ip", "-n", host.name, "addr", "add", f"{host.address}/24", "dev", veth)
            run("ip", "-n", host.name, "link", "set", veth, "up")

    def remove(self) -> list[str]:
        """Stop both servers, end anything left in the namespaces, delete them (the veth goes with them); returns
        what had to be killed, so the test can complain about it."""
        killed: list[str] = []
        for host in (self.a, self.b):
            host.stop()
        for host in (self.a, self.b):
            for pid in host.leftover_pids():
                try:
                    process = psutil.Process(pid)
                    killed.append(f"{host.name}: {' '.join(process.cmdline())[:120]}")
                    process.kill()
                except psutil.NoSuchProcess:
                    continue
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)
        return killed

    def exists(self) -> bool:
        names = run("ip", "netns", "list")
        return any(re.match(rf"^{re.escape(h.name)}\b", line) for h in (self.a, self.b) for line in names.splitlines())
