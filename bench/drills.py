"""Fault drills against a real `gns3server` process; prints one JSON object and removes everything it started.

- `sigkill_writes`: clients write VPCS startup scripts and upload images while the server is killed with SIGKILL;
  after a restart, every acknowledged write must be on disk whole (`lost`, `torn` count the failures).
- `full_disk`: projects and images on a small tmpfs (mounted under a temporary directory, unmounted after); uploads
  and writes until the disk is full must answer 409, never 5xx, and the server must keep answering.
- `vpcs_sigterm` / `vpcs_sigkill`: N running VPCS (default 40), the server stopped by SIGTERM, then (again) killed
  by SIGKILL and restarted; emulator processes left in the projects directory are counted after each restart.
- `idle_connections`: 10,000 idle TCP connections held open, `GET /v1/version` latency meanwhile.
- `stuck_listeners`: 1,000 notification streams that never read while events flow, `GET /v1/version` latency.
- `memory_per_project`: the server's RSS growth per open project.

Targets: 0 lost or torn writes, 0 orphans after restart, `GET /v1/version` p99 <= 50 ms during the connection drills.

    python bench/drills.py [--vpcs 40] [--idle 10000] [--listeners 1000] [--skip full_disk,...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from gns3core.testing.server import ServerProcess, write_config

CONSOLES = (31000, 32999)
TUNNELS = (33000, 36999)


def make_config(root: Path, **server: Any) -> Path:
    return write_config(root / "gns3_server.conf", root, Server={
        "console_start_port_range": CONSOLES[0], "console_end_port_range": CONSOLES[1],
        "udp_start_port_range": TUNNELS[0], "udp_end_port_range": TUNNELS[1], **server})


def processes_in(directory: Path) -> list[psutil.Process]:
    root = os.path.realpath(directory) + os.sep
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and (os.path.realpath(cwd) + os.sep).startswith(root):
            found.append(proc)
    return found


def kill_all(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def version_latency(url: str, count: int = 300) -> dict[str, float]:
    """`GET /v1/version` one at a time on a fresh connection each (what a new client pays), in ms."""
    times = []
    for _ in range(count):
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            async with session.get(f"{url}/v1/version") as reply:
                await reply.read()
                assert reply.status == 200
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(percentile(times, 0.99), 2),
            "max_ms": round(max(times), 2)}


# -- SIGKILL during writes

async def _writer(session: aiohttp.ClientSession, url: str, sent: dict[str, list[str]], acked: dict[str, str],
                  vm_id: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        content = f"# write {n} of {vm_id}\n" + "echo x\n" * (n % 50)
        sent[vm_id].append(content)
        try:
            async with session.put(f"{url}/{vm_id}", json={"startup_script": content}) as reply:
                if reply.status == 200:
                    acked[vm_id] = content
                    acked["#count"] = str(int(acked.get("#count", "0")) + 1)
        except (aiohttp.ClientError, OSError):
            return
        n += 1


async def _uploader(session: aiohttp.ClientSession, url: str, done: dict[str, str], index: int,
                    stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        name = f"drill-{index}-{n}.img"
        data = os.urandom(64 * 1024 + n)
        try:
            async with session.post(f"{url}/v1/qemu/vms/{name}", data=data) as reply:
                if reply.status == 204:
                    done[name] = hashlib.md5(data).hexdigest()
        except (aiohttp.ClientError, OSError):
            return
        n += 1


async def sigkill_writes(root: Path, vms: int = 10, seconds: float = 4.0) -> dict[str, Any]:
    config = make_config(root)
    server = ServerProcess(config, plugins="vpcs,qemu").start()
    pid = str(uuid.uuid4())
    try:
        server.request("POST", "/v1/projects", {"name": "drill", "project_id": pid})
        ids = [server.request("POST", f"/v1/projects/{pid}/vpcs/vms", {"name": f"PC{i}"})[1]["vm_id"]
               for i in range(vms)]
        sent: dict[str, list[str]] = {vm: [] for vm in ids}
        acked: dict[str, str] = {}
        uploads: dict[str, str] = {}
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            base = f"{server.url}/v1/projects/{pid}/vpcs/vms"
            tasks = [asyncio.create_task(_writer(session, base, sent, acked, vm, stop)) for vm in ids]
            tasks += [asyncio.create_task(_uploader(session, server.url, uploads, i, stop)) for i in range(3)]
            await asyncio.sleep(seconds)
            os.kill(server.pid, signal.SIGKILL)
            server.proc.wait()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.kill()
    restarted = ServerProcess(config, plugins="vpcs,qemu").start()
    restarted.stop()
    lost = torn = 0
    vpcs_dir = root / "projects" / pid / "project-files" / "vpcs"
    acknowledged = int(acked.pop("#count", "0"))
    for vm_id, content in acked.items():
        try:
            on_disk = (vpcs_dir / vm_id / "startup.vpc").read_text()
        except OSError:
            lost += 1
            continue
        later = sent[vm_id][sent[vm_id].index(content):]
        if on_disk not in later:
            torn += 1 if on_disk not in sent[vm_id] else 0
            lost += 1 if on_disk in sent[vm_id] else 0
    images = root / "images" / "QEMU"
    for name, md5 in uploads.items():
        path = images / name
        if not path.exists():
            lost += 1
        elif hashlib.md5(path.read_bytes()).hexdigest() != md5:
            torn += 1
    leftovers = [p.name for p in images.iterdir() if p.name.startswith(".")] if images.is_dir() else []
    return {"acknowledged_writes": acknowledged, "acknowledged_uploads": len(uploads), "lost": lost, "torn": torn,
            "partial_files_after_restart": len(leftovers)}


# -- full disk

async def full_disk(root: Path, size_mb: int = 24) -> dict[str, Any]:
    mount = root / "tmpfs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"skipped": f"cannot mount a tmpfs: {result.stderr.strip()}"}
    statuses: dict[int, int] = {}
    try:
        config = make_config(mount)
        server = ServerProcess(config, plugins="vpcs,qemu").start()
        try:
            pid = server.request("POST", "/v1/projects", {"name": "full"})[1]["project_id"]
            vm = server.request("POST", f"/v1/projects/{pid}/vpcs/vms", {"name": "PC"})[1]["vm_id"]
            async with aiohttp.ClientSession() as session:
                for n in range(400):
                    async with session.post(f"{server.url}/v1/qemu/vms/fill-{n}.img",
                                            data=os.urandom(512 * 1024)) as reply:
                        statuses[reply.status] = statuses.get(reply.status, 0) + 1
                    async with session.put(f"{server.url}/v1/projects/{pid}/vpcs/vms/{vm}",
                                           json={"startup_script": "echo x\n" * 2000}) as reply:
                        statuses[reply.status] = statuses.get(reply.status, 0) + 1
                    if statuses.get(409, 0) >= 20:
                        break
                async with session.get(f"{server.url}/v1/version") as reply:
                    alive = reply.status == 200
        finally:
            server.stop()
            server.kill()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    return {"tmpfs_mb": size_mb, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500), "answers_after": alive}


# -- many VPCS, SIGTERM and SIGKILL

async def _start_vpcs(server: ServerProcess, count: int) -> str:
    pid = str(uuid.uuid4())
    server.request("POST", "/v1/projects", {"name": "many", "project_id": pid})
    async with aiohttp.ClientSession() as session:
        semaphore = asyncio.Semaphore(8)

        async def one(index: int) -> None:
            async with semaphore:
                base = f"{server.url}/v1/projects/{pid}/vpcs/vms"
                async with session.post(base, json={"name": f"PC{index}"}) as reply:
                    vm = await reply.json()
                async with session.post(f"{server.url}/v1/projects/{pid}/ports/udp") as reply:
                    lport = (await reply.json())["udp_port"]
                nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": lport + 1}
                async with session.post(f"{base}/{vm['vm_id']}/adapters/0/ports/0/nio", json=nio):
                    pass
                async with session.post(f"{base}/{vm['vm_id']}/start"):
                    pass

        await asyncio.gather(*(one(i) for i in range(count)))
    return pid


async def vpcs_stop_drills(root: Path, count: int) -> dict[str, Any]:
    config = make_config(root)
    projects = root / "projects"
    report: dict[str, Any] = {"vms": count}
    for how in ("sigterm", "sigkill"):
        server = ServerProcess(config, plugins="vpcs").start()
        try:
            await _start_vpcs(server, count)
            running = len(processes_in(projects))
            started = time.monotonic()
            os.kill(server.pid, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
            server.proc.wait(60)
            stop_seconds = time.monotonic() - started
            await asyncio.sleep(1.0)
            left_before_restart = len(processes_in(projects))
        finally:
            server.kill()
        restarted = ServerProcess(config, plugins="vpcs").start()
        orphans = len(processes_in(projects))
        restarted.stop()
        report[how] = {"emulator_processes_running": running, "server_exit_s": round(stop_seconds, 2),
                       "left_before_restart": left_before_restart, "orphans_after_restart": orphans}
        kill_all(processes_in(projects))
    return report


# -- connections

async def idle_connections(root: Path, count: int) -> dict[str, Any]:
    server = ServerProcess(make_config(root), plugins="none").start()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", server.port))
            except BlockingIOError:
                pass
            sockets.append(sock)
        await asyncio.sleep(2.0)
        latency = await version_latency(server.url)
        alive = server.proc.poll() is None
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
        server.kill()
    return {"connections": count, "server_alive": alive, **latency}


async def stuck_listeners(root: Path, count: int, event_rate: float = 5.0) -> dict[str, Any]:
    server = ServerProcess(make_config(root), plugins="vpcs").start()
    sockets: list[socket.socket] = []
    try:
        pid = server.request("POST", "/v1/projects", {"name": "listened"})[1]["project_id"]
        request = f"GET /v1/projects/{pid}/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(request)
            sockets.append(sock)
        stop = asyncio.Event()

        events = 0

        async def churn() -> None:
            """`event_rate` events a second for every listener (a busy lab): a VM asking for a console port outside
            the range is given another one with a `log.warning` notification."""
            nonlocal events
            base = f"{server.url}/v1/projects/{pid}/vpcs/vms"
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    started = time.monotonic()
                    async with session.post(base, json={"name": "noisy", "console": 1}) as reply:
                        vm = await reply.json()
                    async with session.delete(f"{base}/{vm['vm_id']}"):
                        events += 1
                    await asyncio.sleep(max(0.0, 1 / event_rate - (time.monotonic() - started)))

        churner = asyncio.create_task(churn())
        await asyncio.sleep(1.0)
        latency = await version_latency(server.url)
        stop.set()
        await churner
        alive = server.proc.poll() is None
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
        server.kill()
    return {"listeners": count, "events_per_s": event_rate, "events_sent": events, "server_alive": alive, **latency}


async def big_request(root: Path) -> dict[str, Any]:
    """A 4 MB Docker start command (it once froze the server for minutes): its answer time, and `GET /v1/version`
    from another client meanwhile."""
    server = ServerProcess(make_config(root), plugins="docker,qemu").start()
    try:
        pid = server.request("POST", "/v1/projects", {"name": "big"})[1]["project_id"]
        body = json.dumps({"name": "d", "image": "busybox", "start_command": "x " * 2**21}).encode()
        async with aiohttp.ClientSession() as session:
            async def post() -> tuple[int, float]:
                started = time.perf_counter()
                async with session.post(f"{server.url}/v1/projects/{pid}/docker/vms", data=body) as reply:
                    await reply.read()
                    return reply.status, (time.perf_counter() - started) * 1000

            big = asyncio.create_task(post())
            others = []
            while not big.done():
                started = time.perf_counter()
                async with session.get(f"{server.url}/v1/version") as reply:
                    await reply.read()
                others.append((time.perf_counter() - started) * 1000)
            status, elapsed = await big
    finally:
        server.stop()
        server.kill()
    return {"body_mb": round(len(body) / 2**20, 1), "status": status, "answer_ms": round(elapsed, 1),
            "version_requests_meanwhile": len(others), "version_max_ms": round(max(others, default=0.0), 1)}


async def memory_per_project(root: Path, count: int = 300) -> dict[str, Any]:
    server = ServerProcess(make_config(root), plugins="none").start()
    try:
        process = psutil.Process(server.pid)
        before = process.memory_info().rss
        async with aiohttp.ClientSession() as session:
            for i in range(count):
                async with session.post(f"{server.url}/v1/projects", json={"name": f"p{i}"}) as reply:
                    assert reply.status == 201
        after = process.memory_info().rss
    finally:
        server.stop()
        server.kill()
    return {"projects": count, "rss_before_mb": round(before / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
            "kb_per_project": round((after - before) / count / 1024, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vpcs", type=int, default=40)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--listeners", type=int, default=1_000)
    parser.add_argument("--skip", default="", help="comma-separated drills to leave out")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * args.idle + 4096)), hard))
    drills = {
        "sigkill_writes": lambda root: sigkill_writes(root),
        "full_disk": lambda root: full_disk(root),
        "vpcs_stops": lambda root: vpcs_stop_drills(root, args.vpcs),
        "idle_connections": lambda root: idle_connections(root, args.idle),
        "stuck_listeners": lambda root: stuck_listeners(root, args.listeners),
        "big_request": lambda root: big_request(root),
        "memory_per_project": lambda root: memory_per_project(root),
    }
    if shutil.which("vpcs") is None:
        skip |= {"sigkill_writes", "vpcs_stops", "full_disk", "stuck_listeners"}
    report: dict[str, Any] = {"benchmark": "drills", "cpu_count": os.cpu_count(),
                              "load_average_1min": round(os.getloadavg()[0], 2)}
    for name, drill in drills.items():
        if name in skip:
            report[name] = {"skipped": True}
            continue
        root = Path(tempfile.mkdtemp(prefix=f"gns3-drill-{name}-"))
        try:
            report[name] = await drill(root)
        except Exception as exc:  # one broken drill is reported, the others still run
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            kill_all(processes_in(root))
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
