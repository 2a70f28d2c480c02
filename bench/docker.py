"""Docker container start cost: the server's own time per container versus what the engine itself takes.

For N containers (default 10) started concurrently, measures per container
  * engine: `POST /containers/create` and `POST /containers/{id}/start` straight on the Engine API (what `docker
    create` / `docker start` cost), same container settings as the plugin uses;
  * server: the API v1 calls of a client: create (`POST .../docker/images`), attach a UDP NIO to adapter 0, start
    (engine start + veth pair into the container as eth0 + data-plane bridge + console server);
  * the server's own time: those three requests minus the time the same container's engine create and start calls
    took inside the server (measured there), i.e. HTTP, inspect, veth, bridge, console and event bookkeeping;
and prints one JSON object with medians/means in milliseconds. The engine's own numbers swing a lot under load
(vfs storage copies the image per container), so compare `own_time...` with the 500 ms target.

A private dockerd (vfs, no iptables, no bridge) is started under /tmp and stopped at the end, unless --docker-host
names an engine that already has the busybox test image.

    python bench/docker.py [--containers 10] [--rounds 3] [--docker-host unix:///path/docker.sock]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "docker"))

import gns3_docker.plugin  # noqa: E402
from dockerd import TEST_IMAGE, import_test_image, start_dockerd  # noqa: E402
from gns3_docker.engine import DockerEngine  # noqa: E402

from gns3core.app import create_app  # noqa: E402
from gns3core.config import Config  # noqa: E402


def ms(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values) * 1000, 1), "mean": round(statistics.fmean(values) * 1000, 1),
            "max": round(max(values) * 1000, 1)}


async def timed(coro) -> tuple[float, object]:
    start = time.perf_counter()
    result = await coro
    return time.perf_counter() - start, result


async def engine_round(engine: DockerEngine, count: int) -> tuple[list[float], list[float]]:
    """Create then start `count` containers concurrently on the bare engine; per-container durations."""
    spec = {"Image": TEST_IMAGE, "Tty": True, "OpenStdin": True, "Labels": {"gns3.bench": "1"},
            "HostConfig": {"NetworkMode": "none", "CapAdd": ["NET_ADMIN"]}}
    created = await asyncio.gather(*(timed(engine.create_container(spec, f"gns3-bench-{uuid.uuid4()}"))
                                     for _ in range(count)))
    ids = [cid for _, cid in created]
    started = await asyncio.gather(*(timed(engine.start_container(cid)) for cid in ids))
    await asyncio.gather(*(engine.remove_container(cid) for cid in ids))
    return [t for t, _ in created], [t for t, _ in started]


class EngineTimer:
    """Wraps the engine's create and start calls in the server process to record how long each took (by container
    name and id), so the server's own time is the request time minus the engine's create and start of that
    container."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self._create, self._start = DockerEngine.create_container, DockerEngine.start_container
        timer = self

        async def create_container(engine: DockerEngine, spec: dict, name: str) -> str:
            start = time.perf_counter()
            try:
                return await timer._create(engine, spec, name)
            finally:
                timer.created[name] = time.perf_counter() - start

        async def start_container(engine: DockerEngine, cid: str) -> None:
            start = time.perf_counter()
            try:
                return await timer._start(engine, cid)
            finally:
                timer.started[cid] = time.perf_counter() - start

        DockerEngine.create_container = create_container
        DockerEngine.start_container = start_container

    def engine_time(self, vm_id: str, cid: str) -> tuple[float, float]:
        return self.created.get(f"gns3-{vm_id}", 0.0), self.started.get(cid, 0.0)

    def restore(self) -> None:
        DockerEngine.create_container, DockerEngine.start_container = self._create, self._start


TIMER: EngineTimer | None = None


async def server_round(session: aiohttp.ClientSession, base: str, count: int) -> dict[str, list[float]]:
    project = await (await session.post(f"{base}/v1/projects", json={"name": "bench"})).json()
    pid = project["project_id"]

    async def one(index: int) -> tuple[float, float, float, float]:
        t0 = time.perf_counter()
        reply = await session.post(f"{base}/v1/projects/{pid}/docker/images",
                                   json={"name": f"b{index}", "imagename": TEST_IMAGE, "adapters": 1})
        box = await reply.json()
        assert reply.status == 201, box
        t1 = time.perf_counter()
        lport = (await (await session.post(f"{base}/v1/projects/{pid}/ports/udp")).json())["udp_port"]
        rport = (await (await session.post(f"{base}/v1/projects/{pid}/ports/udp")).json())["udp_port"]
        reply = await session.post(f"{base}/v1/projects/{pid}/docker/images/{box['vm_id']}/adapters/0/ports/0/nio",
                                   json={"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport})
        assert reply.status == 201, await reply.text()
        t2 = time.perf_counter()
        reply = await session.post(f"{base}/v1/projects/{pid}/docker/images/{box['vm_id']}/start")
        assert reply.status == 204, await reply.text()
        t3 = time.perf_counter()
        engine_create, engine_start = TIMER.engine_time(box["vm_id"], box["cid"])
        own = (t3 - t0) - engine_create - engine_start
        return t1 - t0, t2 - t1, t3 - t2, own

    results = await asyncio.gather(*(one(i) for i in range(count)))
    close_start = time.perf_counter()
    await session.post(f"{base}/v1/projects/{pid}/close")
    close_time = time.perf_counter() - close_start
    return {"create": [r[0] for r in results], "nio": [r[1] for r in results], "start": [r[2] for r in results],
            "total": [r[0] + r[1] + r[2] for r in results], "own": [r[3] for r in results],
            "close_project": [close_time]}


async def run(docker_host: str, count: int, rounds: int, workdir: Path) -> dict:
    global TIMER
    engine = DockerEngine(docker_host)
    udp_base = 20000 + (os.getpid() % 20) * 500
    config = Config(files=[], overrides={
        "Server": {"host": "127.0.0.1", "projects_path": str(workdir / "projects"),
                   "images_path": str(workdir / "images"),
                   # tunnel ports of their own: other servers on this machine start handing out at 10000
                   "udp_start_port_range": str(udp_base), "udp_end_port_range": str(udp_base + 499)},
        "Docker": {"docker_host": docker_host},
    })
    app = create_app(config, extra_plugins=[gns3_docker.plugin], use_entry_points=False)
    server = TestServer(app, host="127.0.0.1")
    TIMER = EngineTimer()
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    engine_create: list[float] = []
    engine_start: list[float] = []
    measured: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await engine_round(engine, 2)  # warm-up: engine caches, first-use imports
            await server_round(session, base, 2)
            for _ in range(rounds):
                created, started = await engine_round(engine, count)
                engine_create += created
                engine_start += started
                for key, values in (await server_round(session, base, count)).items():
                    measured.setdefault(key, []).extend(values)
    finally:
        await server.close()
        TIMER.restore()
        await engine.close()
    engine_total = [c + s for c, s in zip(engine_create, engine_start, strict=True)]
    return {
        "benchmark": "docker_container_start",
        "containers_concurrent": count,
        "rounds": rounds,
        "engine_version": engine.server_version,
        "engine_ms": {"create": ms(engine_create), "start": ms(engine_start), "create_plus_start": ms(engine_total)},
        "server_ms": {key: ms(values) for key, values in measured.items()},
        "server_overhead_per_container_ms": {
            "own_time_excluding_engine_create_and_start_calls": ms(measured["own"]),
            "start_beyond_engine_start": round((statistics.median(measured["start"])
                                                - statistics.median(engine_start)) * 1000, 1),
            "create_nio_start_beyond_engine_create_start": round((statistics.median(measured["total"])
                                                                  - statistics.median(engine_total)) * 1000, 1),
        },
        "target_overhead_ms": 500,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docker-host", default=None)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its dockerd (finally below)
    workdir = Path(tempfile.mkdtemp(prefix="gns3-bench-docker-", dir="/tmp"))
    daemon = None
    try:
        if args.docker_host is None:
            daemon = start_dockerd(workdir / "engine")
            import_test_image(daemon.socket_path)
            host = daemon.docker_host
        else:
            host = args.docker_host
        result = asyncio.run(run(host, args.containers, args.rounds, workdir))
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
