"""A class lab on one machine: N virtual PCs in linked pairs across projects, through a real `gns3server`.

The lab (default 1,000 PCs, 500 pairs, 10 projects, one per "student group") runs on the built-in VPCS engine; then
the same cycle with N = 100 runs on both backends, the real vpcs and the built-in engine, side by side. For each run
it times each phase (create the projects and PCs; allocate UDP ports and wire every pair; start; every console shows
its prompt, once the startup script `ip <address> 24` has run; the first PC of every pair pings the second with
`ping <peer> -c 2 -i 1`; stop; delete), and reports:

- the server's and the emulators' CPU seconds per phase, and their CPU while the started lab idles (% of one core);
- p50 / p99 of `GET /v1/version` during the run, measured by a separate process with its own connection;
- the RSS of the server and of the emulator processes (engine workers, or every vpcs), per PC beyond their baseline;
- how many pairs got at least one echo reply, and every error.

    python bench/class_lab.py [--n 1000] [--projects 10] [--compare 100] [--concurrency N] [--workers 1]

Requests are sent by one client per project (student group), one at a time each: --concurrency defaults to the
number of projects.
    python bench/class_lab.py --n 0 --compare 100        # only the side-by-side comparison

The servers run with `[Server] mac_base = gns3` unless --mac-base says otherwise: the real vpcs then binds its NIOs
itself, as under GNS3; with the server's own MAC base (--mac-base auto) every vpcs talks through a relay
(docs/multi-host.md).

Prints one JSON object. Everything it starts is stopped; the servers use temporary directories and their own ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from gns3core.testing.server import ServerProcess, write_config
from gns3core.testing.telnet import strip_telnet

PROMPT = re.compile(rb"\n\r?[\w.\-\[\]]+> $")
REPLY = re.compile(rb"icmp_seq=\d+ ttl=\d+ time=")
IDLE_SECONDS = 10.0

# GET /v1/version every 10 ms on one keep-alive connection; stdin says "pause", "resume" or "stop" (a line each, or
# end of file); prints the latencies (seconds) when it stops.
LATENCY_PROBE = textwrap.dedent("""
    import http.client, json, select, sys, time
    host, port = sys.argv[1], int(sys.argv[2])
    samples, conn, paused = [], http.client.HTTPConnection(host, port, timeout=30), False
    while True:
        if select.select([sys.stdin], [], [], 0.5 if paused else 0.01)[0]:
            word = sys.stdin.readline().strip()
            if word in ("", "stop"):
                break
            paused = word == "pause"
        if paused:
            continue
        start = time.perf_counter()
        try:
            conn.request("GET", "/v1/version")
            conn.getresponse().read()
            samples.append(time.perf_counter() - start)
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
    print(json.dumps(samples))
""")



class Processes:
    """CPU and memory of the server and of the emulator processes under it."""

    def __init__(self, server_pid: int, backend: str) -> None:
        self.server = psutil.Process(server_pid)
        self.backend = backend
        self.gone_cpu = 0.0  # CPU of emulator processes that ended (stopped vpcs)
        self._seen: dict[int, tuple[psutil.Process, float]] = {}

    def emulators(self) -> list[psutil.Process]:
        found = []
        for child in self.server.children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if (self.backend == "builtin" and "gns3_vpcs.engine.worker" in cmdline) or \
                    (self.backend == "vpcs" and child.name() == "vpcs"):
                found.append(child)
        return found

    def server_cpu(self) -> float:
        times = self.server.cpu_times()
        return times.user + times.system

    def emulator_cpu(self) -> float:
        """CPU seconds of every emulator process seen so far (those that ended count with their last reading)."""
        for process in self.emulators():
            self._seen[process.pid] = (process, self._seen.get(process.pid, (process, 0.0))[1])
        total = 0.0
        for pid, (process, last) in list(self._seen.items()):
            try:
                times = process.cpu_times()
                last = times.user + times.system
                self._seen[pid] = (process, last)
            except psutil.Error:
                pass
            total += last
        return total

    def rss(self) -> tuple[int, int]:
        """(server RSS, sum of the emulators' RSS) in bytes."""
        emulators = 0
        for process in self.emulators():
            try:
                emulators += process.memory_info().rss
            except psutil.Error:
                continue
        return self.server.memory_info().rss, emulators


class Lab:
    def __init__(self, url: str, processes: Processes, n: int, projects: int, concurrency: int,
                 probe: subprocess.Popen | None = None) -> None:
        self.url = url
        self.probe = probe  # paused while the idle CPU is measured: its requests are not the lab's
        self.processes = processes
        self.n = n
        self.project_count = projects
        self.limit = asyncio.Semaphore(concurrency)
        self.errors: list[str] = []
        self.phases: dict[str, dict[str, float]] = {}
        self.session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)) -> Any:
        assert self.session is not None
        async with self.limit:
            try:
                async with self.session.request(method, path, json=body) as reply:
                    data = await reply.read()
                    if reply.status not in expect:
                        self.errors.append(f"{method} {path}: {reply.status} {data[:200]!r}")
                        return None
                    return json.loads(data) if data else {}
            except aiohttp.ClientError as exc:
                self.errors.append(f"{method} {path}: {exc}")
                return None

    async def phase(self, name: str, work) -> Any:
        server, emulators, start = self.processes.server_cpu(), self.processes.emulator_cpu(), time.perf_counter()
        result = await work
        seconds = time.perf_counter() - start
        server = self.processes.server_cpu() - server
        emulators = self.processes.emulator_cpu() - emulators
        self.phases[name] = {"seconds": round(seconds, 3), "server_cpu_seconds": round(server, 3),
                             "emulator_cpu_seconds": round(emulators, 3),
                             "server_cpu_ms_per_pc": round(server * 1000 / self.n, 3)}
        return result

    async def console(self, port: int, timeout: float = 60.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect and read until the prompt (banner and startup script first); Enter is pressed if none comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        seen, pressed = b"", False
        while not PROMPT.search(seen):
            remaining = deadline - loop.time()
            if remaining <= 0:
                writer.close()
                raise TimeoutError(f"console {port}: no prompt: {seen[-100:]!r}")
            try:
                chunk = await asyncio.wait_for(reader.read(65536), min(remaining, 5.0))
            except TimeoutError:
                if not pressed:
                    writer.write(b"\n")
                    pressed = True
                continue
            if not chunk:
                raise ConnectionError(f"console {port} closed")
            seen += strip_telnet(chunk)
        return reader, writer

    async def ping(self, console: tuple[asyncio.StreamReader, asyncio.StreamWriter], address: str) -> bool:
        reader, writer = console
        writer.write(f"ping {address} -c 2 -i 1\n".encode())  # -i 1: 1 ms between echoes, no second's wait after
        seen = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not (b"-i 1" in seen and PROMPT.search(seen)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), remaining)
            except TimeoutError:
                break
            if not chunk:
                break
            seen += strip_telnet(chunk)
        return REPLY.search(seen) is not None

    async def run(self) -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(self.url, connector=connector) as session:
            self.session = session
            total_start = time.perf_counter()
            per_project = self.n // self.project_count
            rss_empty = self.processes.rss()

            async def create() -> list[dict[str, Any]]:
                projects = await asyncio.gather(*(self.call("POST", "/v1/projects", {"name": f"group-{g + 1}"},
                                                            (201,)) for g in range(self.project_count)))
                jobs = []
                for g, project in enumerate(projects):
                    if project is None:
                        continue
                    for i in range(per_project):
                        address = f"10.{g + 1}.{i // 2}.{i % 2 + 1}"
                        body = {"name": f"PC{i + 1}", "startup_script": f"ip {address} 24\n"}
                        jobs.append(self.pc(project["project_id"], body, address, i))
                return [pc for pc in await asyncio.gather(*jobs) if pc is not None], projects

            pcs, projects = await self.phase("create", create())
            pairs = [(pcs[i], pcs[i + 1]) for i in range(0, len(pcs) - 1, 2)
                     if pcs[i]["project"] == pcs[i + 1]["project"] and pcs[i]["index"] + 1 == pcs[i + 1]["index"]]

            async def wire_pair(a: dict[str, Any], b: dict[str, Any]) -> None:
                base = f"/v1/projects/{a['project']}"
                ports = [await self.call("POST", f"{base}/ports/udp", None, (201,)) for _ in range(2)]
                if None in ports:
                    return
                pa, pb = ports[0]["udp_port"], ports[1]["udp_port"]
                await asyncio.gather(
                    self.call("POST", f"{a['url']}/adapters/0/ports/0/nio",
                              {"type": "nio_udp", "lport": pa, "rhost": "127.0.0.1", "rport": pb}, (201,)),
                    self.call("POST", f"{b['url']}/adapters/0/ports/0/nio",
                              {"type": "nio_udp", "lport": pb, "rhost": "127.0.0.1", "rport": pa}, (201,)))

            await self.phase("wire", asyncio.gather(*(wire_pair(a, b) for a, b in pairs)))
            await asyncio.sleep(1.0)  # let a spawning engine worker settle: its baseline is measured here
            rss_before = self.processes.rss()
            await self.phase("start", asyncio.gather(*(self.call("POST", f"{pc['url']}/start", None, (200, 204))
                                                       for pc in pcs)))

            ready_after: list[float] = []

            async def open_console(pc: dict[str, Any]) -> None:
                opened = time.perf_counter()
                try:
                    pc["console_io"] = await self.console(pc["console"])
                    ready_after.append(time.perf_counter() - opened)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    self.errors.append(f"console {pc['console']}: {exc}")

            await self.phase("consoles", asyncio.gather(*(open_console(pc) for pc in pcs)))
            self.phases["consoles"]["prompt_after_seconds"] = {"p50": percentile(ready_after, 0.5, 1),
                                                               "max": percentile(ready_after, 1.0, 1)}

            async def ping_pair(a: dict[str, Any], b: dict[str, Any]) -> bool:
                if "console_io" not in a:
                    return False
                return await self.ping(a["console_io"], b["address"])

            results = await self.phase("ping", asyncio.gather(*(ping_pair(a, b) for a, b in pairs)))
            rss_running = self.processes.rss()
            for pc in pcs:
                if "console_io" in pc:
                    pc["console_io"][1].close()
            idle_start = time.perf_counter()
            idle = await self.idle()
            idle_seconds = time.perf_counter() - idle_start
            await self.phase("stop", asyncio.gather(*(self.call("POST", f"{pc['url']}/stop", None, (204,))
                                                      for pc in pcs)))
            await self.phase("delete", asyncio.gather(*(self.call("DELETE", pc["url"], None, (204,)) for pc in pcs)))
            lab_seconds = time.perf_counter() - total_start - idle_seconds
            await asyncio.gather(*(self.call("DELETE", f"/v1/projects/{p['project_id']}", None, (204,))
                                   for p in projects if p))
        started = len(pcs)
        return {
            "pcs": started,
            "pairs": len(pairs),
            "projects": self.project_count,
            "phases": self.phases,
            "cycle_seconds": round(sum(p["seconds"] for p in self.phases.values()), 3),
            "total_seconds": round(lab_seconds, 3),  # create to delete, without the idle measurement
            "idle": idle,
            "rss_mb": {"server_empty": _mb(rss_empty[0]), "server_before_start": _mb(rss_before[0]),
                       "server_running": _mb(rss_running[0]),
                       "emulators_before_start": _mb(rss_before[1]), "emulators_running": _mb(rss_running[1])},
            "rss_kb_per_pc": {"server": _kb((rss_running[0] - rss_empty[0]) / max(started, 1)),
                              "emulators": _kb((rss_running[1] - rss_before[1]) / max(started, 1))},
            "emulator_processes": len(self.processes.emulators()),
            "ping_success": sum(1 for ok in results if ok),
            "errors": self.errors[:20],
            "error_count": len(self.errors),
        }

    async def pc(self, project_id: str, body: dict[str, Any], address: str, index: int) -> dict[str, Any] | None:
        vm = await self.call("POST", f"/v1/projects/{project_id}/vpcs/vms", body, (201,))
        if vm is None:
            return None
        return {"project": project_id, "url": f"/v1/projects/{project_id}/vpcs/vms/{vm['vm_id']}",
                "console": vm["console"], "address": address, "index": index}

    def _tell_probe(self, word: str) -> None:
        if self.probe is not None and self.probe.stdin is not None:
            self.probe.stdin.write(word + "\n")
            self.probe.stdin.flush()

    async def idle(self) -> dict[str, float]:
        """CPU of the server and the emulators over IDLE_SECONDS while every PC is started and nothing happens."""
        self._tell_probe("pause")
        try:
            await asyncio.sleep(2.0)  # the last pings' intervals end
            server, emulators = self.processes.server_cpu(), self.processes.emulator_cpu()
            await asyncio.sleep(IDLE_SECONDS)
            server = self.processes.server_cpu() - server
            emulators = self.processes.emulator_cpu() - emulators
        finally:
            self._tell_probe("resume")
        return {"seconds": IDLE_SECONDS, "server_percent_of_one_core": round(server * 100 / IDLE_SECONDS, 2),
                "emulators_percent_of_one_core": round(emulators * 100 / IDLE_SECONDS, 2),
                "total_percent_of_one_core": round((server + emulators) * 100 / IDLE_SECONDS, 2)}


def _mb(value: float) -> float:
    return round(value / 2**20, 1)


def _kb(value: float) -> float:
    return round(value / 1024, 1)


def percentile(samples: list[float], fraction: float, scale: float = 1000.0) -> float | None:
    """The `fraction` percentile of `samples` (seconds), in milliseconds by default."""
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * scale, 3)


def run_lab(backend: str, n: int, projects: int, concurrency: int, workers: int, vpcs: str | None,
            mac_base: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gns3-class-lab-") as tmp:
        sections: dict[str, dict[str, Any]] = {
            # outside the kernel's ephemeral range (32768-60999 here), where this client's own sockets land
            "Server": {"console_start_port_range": 61000, "console_end_port_range": 63999,
                       "udp_start_port_range": 12000, "udp_end_port_range": 17999, "mac_base": mac_base},
            "VPCS": {"backend": backend, "builtin_workers": workers},
        }
        if vpcs:
            sections["VPCS"]["vpcs_path"] = vpcs
        config = write_config(Path(tmp) / "gns3_server.conf", Path(tmp), **sections)
        server = ServerProcess(config, plugins="vpcs", log=Path(tmp) / "server.log").start()
        processes = Processes(server.pid, backend)
        started: set[int] = set()
        probe = subprocess.Popen([sys.executable, "-c", LATENCY_PROBE, "127.0.0.1", str(server.port)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            lab = Lab(server.url, processes, n, projects, concurrency, probe)
            result = asyncio.run(lab.run())
        finally:
            probe.stdin.write("stop\n")  # type: ignore[union-attr]
            probe.stdin.close()  # type: ignore[union-attr]
            samples = json.loads(probe.stdout.read() or "[]")  # type: ignore[union-attr]
            probe.wait()
            try:
                started.update(p.pid for p in psutil.Process(server.pid).children(recursive=True))
            except psutil.Error:
                pass
            server.stop()
            for pid in started:  # only what this benchmark's server started
                try:
                    psutil.Process(pid).kill()
                except psutil.Error:
                    pass
    result["api_version_latency_ms"] = {"samples": len(samples), "p50": percentile(samples, 0.50),
                                        "p99": percentile(samples, 0.99), "max": percentile(samples, 1.0)}
    result["backend"] = backend
    result["concurrency"] = concurrency
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="PCs of the big lab on the built-in engine (0: skip it)")
    parser.add_argument("--projects", type=int, default=10, help="projects of the big lab (default 10)")
    parser.add_argument("--compare", type=int, default=100, help="PCs of the side-by-side run (0: skip it)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="API requests in flight (default: one per project)")
    parser.add_argument("--workers", type=int, default=1, help="[VPCS] builtin_workers (default 1)")
    parser.add_argument("--vpcs", default=shutil.which("vpcs"), help="the real vpcs (default: vpcs on PATH)")
    parser.add_argument("--mac-base", default="gns3", help="[Server] mac_base (default gns3: no relay for vpcs)")
    args = parser.parse_args()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "mac_base": args.mac_base,
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if args.n:
        concurrency = args.concurrency or args.projects
        report["lab"] = run_lab("builtin", args.n, args.projects, concurrency, args.workers, None, args.mac_base)
    if args.compare:
        projects = max(1, min(args.projects, args.compare // 10))
        concurrency = args.concurrency or projects
        comparison: dict[str, Any] = {"n": args.compare, "projects": projects}
        if args.vpcs:
            comparison["vpcs"] = run_lab("vpcs", args.compare, projects, concurrency, args.workers, args.vpcs,
                                         args.mac_base)
        comparison["builtin"] = run_lab("builtin", args.compare, projects, concurrency, args.workers, None,
                                        args.mac_base)
        if "vpcs" in comparison:
            comparison["builtin_cycle_over_vpcs_cycle"] = round(
                comparison["builtin"]["cycle_seconds"] / comparison["vpcs"]["cycle_seconds"], 3)
        report["compare"] = comparison
    print(json.dumps(report, indent=2))
    failed = [r for r in (report.get("lab"), *report.get("compare", {}).values()) if isinstance(r, dict)
              and r.get("error_count")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
