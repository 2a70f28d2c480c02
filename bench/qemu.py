"""Qemu plugin costs, measured against a real `gns3server` process; prints one JSON object.

* start: for N rounds, the time from sending `POST .../qemu/vms/{id}/start` to its 200 (the server returns once qemu
  runs and its monitor has greeted), next to qemu's own start-up: the very same command line (read back from the
  VM's `qemu.command`) launched directly, timed until its monitor greets. `overhead` is the difference of medians
  (target: at most 50 ms).
* upload: the server's RSS growth while a 1 GiB image is uploaded to `POST /v1/qemu/vms/{path}`, sampled every
  20 ms (target: under 20 MB). The body is generated on the fly and the image is deleted afterwards.

    python bench/qemu.py [--rounds 7] [--upload-mib 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from gns3core.testing.server import ServerProcess, write_config


def ms(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values) * 1000, 1), "min": round(min(values) * 1000, 1),
            "max": round(max(values) * 1000, 1)}


async def wait_monitor(port: int, deadline: float) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(reader.readuntil(b"(qemu) "), 5)
            writer.close()
            return
        except (OSError, asyncio.IncompleteReadError):
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.002)


async def qemu_alone(command: list[str]) -> float:
    """qemu's own start-up: launch to monitor greeting, with the same argv the server used."""
    port = int(command[command.index("-monitor") + 1].split(":")[2].split(",")[0])
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        await wait_monitor(port, start + 30)
        return time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def bench_start(session: aiohttp.ClientSession, base: str, project_id: str, rounds: int) -> dict:
    url = f"{base}/v1/projects/{project_id}/qemu/vms"
    async with session.post(url, json={"name": "bench", "qemu_path": "qemu-system-x86_64", "ram": 64,
                                       "process_priority": "normal"}) as response:
        vm = await response.json()
    vm_url = f"{url}/{vm['vm_id']}"
    server_times, qemu_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        async with session.post(f"{vm_url}/start") as response:
            assert response.status == 200, await response.text()
        server_times.append(time.perf_counter() - start)
        command = shlex.split((Path(vm["vm_directory"]) / "qemu.command").read_text())
        async with session.post(f"{vm_url}/stop") as response:
            assert response.status == 204
        qemu_times.append(await qemu_alone(command))
    return {
        "server_start_to_monitor_ms": ms(server_times),
        "qemu_alone_start_to_monitor_ms": ms(qemu_times),
        "overhead_ms": round((statistics.median(server_times) - statistics.median(qemu_times)) * 1000, 1),
        "rounds": rounds,
    }


async def bench_upload(session: aiohttp.ClientSession, base: str, server_pid: int, mib: int, images: Path) -> dict:
    process = psutil.Process(server_pid)
    block = os.urandom(1024 * 1024)
    baseline = process.memory_info().rss
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    async def body():
        for i in range(mib):
            yield i.to_bytes(8, "big") + block[8:]  # every MiB differs, none is stored twice

    sampler = asyncio.get_running_loop().create_task(sample())
    start = time.perf_counter()
    async with session.post(f"{base}/v1/qemu/vms/bench/big.img", data=body()) as response:
        status = response.status
    elapsed = time.perf_counter() - start
    done.set()
    await sampler
    target = images / "QEMU" / "bench" / "big.img"
    size = target.stat().st_size if target.exists() else 0
    for leftover in (target, target.with_name("big.img.md5sum")):
        leftover.unlink(missing_ok=True)
    return {
        "status": status,
        "bytes": size,
        "seconds": round(elapsed, 2),
        "mib_per_s": round(mib / elapsed, 1),
        "rss_baseline_mb": round(baseline / 2**20, 1),
        "rss_growth_mb": round((peak - baseline) / 2**20, 1),
    }


async def main(rounds: int, mib: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gns3-bench-qemu-") as tmp:
        root = Path(tmp)
        config = write_config(root / "server.ini", root, Server={"host": "127.0.0.1"})
        server = ServerProcess(config, plugins="qemu").start()
        base = server.url
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{base}/v1/projects", json={"name": "bench"}) as response:
                    project_id = (await response.json())["project_id"]
                result = {"start": await bench_start(session, base, project_id, rounds)}
                result["upload"] = await bench_upload(session, base, server.pid, mib, root / "images")
                async with session.delete(f"{base}/v1/projects/{project_id}"):
                    pass
        finally:
            server.stop()
    result["cpu_count"] = os.cpu_count()
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--upload-mib", type=int, default=1024)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rounds, args.upload_mib)), indent=2))
