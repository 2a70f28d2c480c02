"""A VPCS topology through a real `gns3server` process and the real vpcs; prints one JSON object.

For N VPCS VMs (default 40), with 16 requests in flight, it times each phase: create the VMs; allocate UDP ports and
add the NIOs wiring the VMs in pairs; start all; wait until every console shows a prompt; stop all; delete all. For
each phase it reports the wall time, the time per node and the server's own CPU seconds (psutil on the server
process; the vpcs processes are not counted), plus the server's RSS when idle and with every VM running. The server
runs with a temporary configuration and only the vpcs plugin (GNS3_PLUGINS=vpcs); everything started is killed.

    python bench/topology.py [--n 40] [--concurrency 16] [--vpcs /usr/bin/vpcs] [--mac-base auto|gns3|02:4a:7c]

`--mac-base gns3` runs vpcs on its NIOs as GNS3 did; by default (the server's own MAC base) each vpcs talks to a
translating relay of the data plane (docs/multi-host.md), which this measures too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from gns3core.testing.server import ServerProcess, write_config
from gns3core.testing.telnet import strip_telnet

PROMPT = re.compile(rb"[\w.\-\[\]]+> ?$")


def vpcs_version(path: str) -> str | None:
    done = subprocess.run([path, "-v"], capture_output=True, timeout=10, check=False)
    match = re.search(rb"version ([0-9a-z.]+)", done.stdout)
    return match.group(1).decode() if match else None


class Bench:
    def __init__(self, base_url: str, server: psutil.Process, n: int, concurrency: int) -> None:
        self.base_url = base_url
        self.server = server
        self.n = n
        self.limit = asyncio.Semaphore(concurrency)
        self.errors: list[str] = []
        self.phases: dict[str, dict[str, float]] = {}
        self.session: aiohttp.ClientSession | None = None

    def cpu(self) -> float:
        times = self.server.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return round(self.server.memory_info().rss / 2**20, 1)

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        assert self.session is not None
        async with self.limit:
            async with self.session.request(method, path, json=body) as reply:
                data = await reply.read()
                if reply.status != expect:
                    self.errors.append(f"{method} {path}: {reply.status} {data[:200]!r}")
                    return None
                return json.loads(data) if data else None

    async def phase(self, name: str, work) -> Any:
        cpu, start = self.cpu(), time.perf_counter()
        result = await work
        seconds = time.perf_counter() - start
        self.phases[name] = {
            "seconds": round(seconds, 4),
            "ms_per_node": round(seconds * 1000 / self.n, 3),
            "server_cpu_seconds": round(self.cpu() - cpu, 4),
            "server_cpu_ms_per_node": round((self.cpu() - cpu) * 1000 / self.n, 3),
        }
        return result

    async def console_prompt(self, port: int, timeout: float = 60.0) -> bool:
        """Connect (retrying while refused) and read until a prompt; press Enter if none comes by itself."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                if loop.time() > deadline:
                    self.errors.append(f"console {port} refused connections")
                    return False
                await asyncio.sleep(0.01)
        seen, pressed = b"", False
        try:
            while not PROMPT.search(seen):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.errors.append(f"console {port} showed no prompt: {seen[-80:]!r}")
                    return False
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), min(remaining, 1.0))
                except TimeoutError:
                    chunk = b""
                    if not pressed:
                        writer.write(b"\n")
                        pressed = True
                    continue
                if not chunk:
                    self.errors.append(f"console {port} closed")
                    return False
                seen += strip_telnet(chunk).replace(b"\r", b"")
            return True
        finally:
            writer.close()

    async def run(self) -> dict[str, Any]:
        async with aiohttp.ClientSession(self.base_url, connector=aiohttp.TCPConnector(limit=0)) as session:
            self.session = session
            rss_idle = self.rss_mb()
            total_cpu, total_start = self.cpu(), time.perf_counter()
            project = await self.call("POST", "/v1/projects", {"name": "topology-bench"}, 201)
            base = f"/v1/projects/{project['project_id']}"

            async def create() -> list[dict[str, Any]]:
                replies = await asyncio.gather(*(self.call("POST", f"{base}/vpcs/vms", {"name": f"PC{i + 1}"}, 201)
                                                 for i in range(self.n)))
                return [vm for vm in replies if vm]

            vms = await self.phase("create", create())

            async def wire() -> None:
                count = len(vms) + (len(vms) % 2)  # an odd last VM points at a port nobody listens on
                ports = await asyncio.gather(*(self.call("POST", f"{base}/ports/udp", None, 201)
                                               for _ in range(count)))
                numbers = [p["udp_port"] for p in ports if p]
                jobs = []
                for index, vm in enumerate(vms):
                    peer = index + 1 if index % 2 == 0 else index - 1
                    nio = {"type": "nio_udp", "lport": numbers[index], "rhost": "127.0.0.1", "rport": numbers[peer]}
                    jobs.append(self.call("POST", f"{base}/vpcs/vms/{vm['vm_id']}/adapters/0/ports/0/nio", nio, 201))
                await asyncio.gather(*jobs)

            await self.phase("wire", wire())
            await self.phase("start", asyncio.gather(*(self.call("POST", f"{base}/vpcs/vms/{vm['vm_id']}/start",
                                                                 None, 200) for vm in vms)))
            await self.phase("consoles", asyncio.gather(*(self.console_prompt(vm["console"]) for vm in vms)))
            rss_running = self.rss_mb()
            running = [p for p in self.server.children(recursive=True) if p.name() == "vpcs"]
            await self.phase("stop", asyncio.gather(*(self.call("POST", f"{base}/vpcs/vms/{vm['vm_id']}/stop",
                                                                None, 204) for vm in vms)))
            await self.phase("delete", asyncio.gather(*(self.call("DELETE", f"{base}/vpcs/vms/{vm['vm_id']}",
                                                                  None, 204) for vm in vms)))
            total_seconds = time.perf_counter() - total_start
            total_cpu = self.cpu() - total_cpu
            leftovers = [p.pid for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            zombies = [p.pid for p in running if p.is_running() and p.status() == psutil.STATUS_ZOMBIE]
            await self.call("DELETE", base, None, 204)
        cycle = sum(p["seconds"] for p in self.phases.values())
        return {
            "n": self.n,
            "vms_created": len(vms),
            "vpcs_processes_running": len(running),
            "phases": self.phases,
            "cycle_seconds": round(cycle, 4),
            "total_seconds_with_project": round(total_seconds, 4),
            "server_cpu_seconds": round(total_cpu, 4),
            "server_rss_mb": {"idle": rss_idle, "all_running": rss_running},
            "errors": self.errors[:20],
            "error_count": len(self.errors),
            "leftover_vpcs_pids": leftovers,
            "zombie_vpcs_pids": zombies,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="number of VPCS VMs (default 40)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--vpcs", default=shutil.which("vpcs"), help="the vpcs binary (default: vpcs on PATH)")
    parser.add_argument("--mac-base", default="auto", help="[Server] mac_base (default auto; gns3: no relay)")
    args = parser.parse_args()
    if not args.vpcs:
        raise SystemExit("vpcs is not installed (apt-get install vpcs)")
    with tempfile.TemporaryDirectory(prefix="gns3-topology-") as tmp:
        config = write_config(Path(tmp) / "gns3_server.conf", Path(tmp),
                              Server={"console_start_port_range": 27000, "console_end_port_range": 27999,
                                      "udp_start_port_range": 28000, "udp_end_port_range": 29999,
                                      "mac_base": args.mac_base},
                              VPCS={"vpcs_path": args.vpcs})
        process = ServerProcess(config, plugins="vpcs").start()
        server = psutil.Process(process.pid)
        started: set[int] = set()
        try:
            bench = Bench(process.url, server, args.n, args.concurrency)

            async def go() -> dict[str, Any]:
                bench.limit = asyncio.Semaphore(args.concurrency)
                return await bench.run()

            result = asyncio.run(go())
        finally:
            if server.is_running():
                started.update(p.pid for p in server.children(recursive=True))
            process.stop()
            for pid in started:  # only what this benchmark's server started
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    result.update({
        "concurrency": args.concurrency,
        "mac_base": args.mac_base,
        "vpcs": args.vpcs,
        "vpcs_version": vpcs_version(args.vpcs),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    })
    print(json.dumps(result, indent=2))
    return 0 if result["error_count"] == 0 and not result["leftover_vpcs_pids"] else 1


if __name__ == "__main__":
    sys.exit(main())
