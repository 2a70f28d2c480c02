"""Benchmark: create and start a 16-port Ethernet switch with 16 VPCS attached, then ping through it.

Runs once per switch backend (dynamips when installed, and the built-in switch) on an in-process server and prints
JSON: setup time (switch created, 16 VPCS started and plugged in) and the ping round trip VPCS reports.
Usage: python bench/switch.py [--ports 16] [--pings 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "dynamips"))

import gns3_dynamips.plugin  # noqa: E402
from lab import VPC  # noqa: E402

from gns3core.app import create_app  # noqa: E402
from gns3core.config import Config  # noqa: E402


async def run_backend(backend: str, ports: int, pings: int) -> dict:
    vpcs = shutil.which("vpcs")
    if vpcs is None:
        return {"backend": backend, "error": "vpcs is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = Config(files=[], overrides={
            "Server": {"projects_path": str(tmp_path / "projects"), "images_path": str(tmp_path / "images")},
            "Dynamips": {"switch_backend": backend},
        })
        app = create_app(config, extra_plugins=[gns3_dynamips.plugin], use_entry_points=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        vpcs_list = []
        try:
            pid = (await (await client.post("/v1/projects", json={"name": "bench"})).json())["project_id"]
            began = time.perf_counter()
            reply = await client.post(f"/v1/projects/{pid}/dynamips/devices",
                                      json={"name": "SW", "device_type": "ethernet_switch"})
            switch = (await reply.json())["device_id"]
            # Wired first, started second, as a GNS3 client builds a lab: dynamips 0.2.14 can deadlock when a port
            # is attached to a switch while it is forwarding frames (docs/dynamips.md).
            vpcs_list = [VPC(vpcs, tmp_path, f"10.0.1.{n + 1}", n + 1) for n in range(ports)]
            for number, vpc in enumerate(vpcs_list, start=1):
                body = {"nio": vpc.nio(), "port_settings": {"type": "access", "vlan": 1}}
                reply = await client.post(f"/v1/projects/{pid}/dynamips/devices/{switch}/ports/{number}/nio",
                                          json=body)
                assert reply.status == 201, await reply.text()
            await asyncio.gather(*(vpc.launch() for vpc in vpcs_list))
            setup = time.perf_counter() - began
            target = f"10.0.1.{ports}"
            await vpcs_list[0].ping(target, count=1)  # ARP warm-up
            output = await vpcs_list[0].command_async(f"ping {target} -c {pings}", timeout=10 + 3 * pings)
            rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", output)]
        finally:
            for vpc in vpcs_list:
                vpc.stop()
            await client.close()
    return {
        "backend": backend,
        "ports": ports,
        "setup_seconds": round(setup, 3),
        "ping_replies": len(rtts),
        "ping_rtt_ms_median": statistics.median(rtts) if rtts else None,
        "ping_rtt_ms_min": min(rtts) if rtts else None,
        "ping_rtt_ms_max": max(rtts) if rtts else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=16)
    parser.add_argument("--pings", type=int, default=5)
    args = parser.parse_args()
    results = []
    for backend in ("dynamips", "builtin"):
        if backend == "dynamips" and shutil.which("dynamips") is None:
            results.append({"backend": backend, "error": "dynamips is not installed"})
            continue
        results.append(await run_backend(backend, args.ports, args.pings))
    print(json.dumps({"benchmark": "switch", "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
