"""The seed's sample session, end to end: a real gns3server process, two VPCS, a ping through the tunnel.

It runs on both backends: two real vpcs processes, or two virtual PCs of the built-in engine's worker.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import pytest_asyncio
from vpcs_helpers import BOTH_BACKENDS, CONSOLE_RANGE, UDP_RANGE, Console, leftovers, vpcs_tree

from gns3core.testing import require
from gns3core.testing.client import ApiClient
from gns3core.testing.server import ServerProcess, write_config

pytestmark = pytest.mark.usefixtures("vpcs_binary")

REPLY = re.compile(r"(?:84 bytes from )?192\.168\.1\.1 icmp_seq=\d+ ttl=64 time=")


@pytest.fixture
def server_config(tmp_path: Path, vpcs_backend: str) -> Path:
    installed = [ep.name for ep in importlib.metadata.entry_points(group="gns3server.plugins")]
    require("vpcs" in installed, "the gns3-vpcs distribution is not installed (pip install -e plugins/gns3-vpcs)")
    return write_config(tmp_path / "gns3_server.conf", tmp_path, Server={
        "console_start_port_range": CONSOLE_RANGE[0], "console_end_port_range": CONSOLE_RANGE[1],
        "udp_start_port_range": UDP_RANGE[0], "udp_end_port_range": UDP_RANGE[1]}, VPCS={"backend": vpcs_backend})


def engine_workers(server_pid: int) -> list[psutil.Process]:
    """The built-in engine's worker processes under the server."""
    found = []
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if "gns3_vpcs.engine.worker" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest_asyncio.fixture
async def server(server_config: Path) -> AsyncIterator[tuple[ApiClient, ServerProcess]]:
    process = ServerProcess(server_config, plugins="vpcs").start()
    session = aiohttp.ClientSession(base_url=process.url)
    try:
        yield ApiClient(session), process
    finally:
        await session.close()
        process.stop()


def test_list_plugins_reports_vpcs(server_config: Path, vpcs_binary: str) -> None:
    env = {**os.environ, "GNS3_PLUGINS": "vpcs"}
    done = subprocess.run([sys.executable, "-m", "gns3core", "--config", str(server_config), "--list-plugins"],
                          capture_output=True, text=True, env=env, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"emulator vpcs: program found \({re.escape(vpcs_binary)}, version [0-9a-z.]+\)", done.stdout)


@BOTH_BACKENDS
async def test_sample_session(server: tuple[ApiClient, ServerProcess], vpcs_backend: str) -> None:
    api, process = server
    project = (await api.post("/v1/projects", {"name": "test"})).json
    base = f"/v1/projects/{project['project_id']}"
    vms: list[dict[str, Any]] = []
    for name in ("VPCS 1", "VPCS 2"):
        reply = await api.post(f"{base}/vpcs/vms", {"name": name})
        assert reply.status == 201, reply
        vms.append(reply.json)
    ports = []
    for _ in vms:
        reply = await api.post(f"{base}/ports/udp")
        assert reply.status == 201, reply
        ports.append(reply.json["udp_port"])
    for vm, lport, rport in ((vms[0], ports[0], ports[1]), (vms[1], ports[1], ports[0])):
        nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport}
        reply = await api.post(f"{base}/vpcs/vms/{vm['vm_id']}/adapters/0/ports/0/nio", nio)
        assert reply.status == 201 and reply.json == nio
    for vm in vms:
        # 200 with the VM object, as released 1.5.x answers (api-1.5-release §15 #2; the seed said 204)
        assert (await api.post(f"{base}/vpcs/vms/{vm['vm_id']}/start")).status == 200
    pids = [p.pid for p in vpcs_tree(process.pid)]
    if vpcs_backend == "vpcs":
        assert len(pids) == 4  # per VM: the console server and its virtual PC
    else:
        assert pids == [] and len(engine_workers(process.pid)) == 1  # both PCs live in the one worker
    consoles = [await Console.open(vm["console"]) for vm in vms]
    try:
        await asyncio.gather(*(console.prompt() for console in consoles))
        configured = await asyncio.gather(consoles[0].command("ip 192.168.1.1 24"),
                                          consoles[1].command("ip 192.168.1.2 24"))
        assert "192.168.1.1 255.255.255.0" in configured[0], configured
        assert "192.168.1.2 255.255.255.0" in configured[1], configured
        output = await consoles[1].command("ping 192.168.1.1 -c 3", timeout=20)
        assert len(REPLY.findall(output)) >= 2, output
        consoles[0].writer.write(b"disconnect\n")  # the seed's way to leave a console
        await consoles[0].writer.drain()
        farewell = await asyncio.wait_for(consoles[0].reader.read(), 10)
        assert b"Good-bye" in farewell, farewell
    finally:
        for console in consoles:
            await console.close()
    for vm in vms:
        assert (await api.post(f"{base}/vpcs/vms/{vm['vm_id']}/stop")).status == 204
        assert (await api.delete(f"{base}/vpcs/vms/{vm['vm_id']}")).status == 204
    assert leftovers(pids) == []
    assert vpcs_tree(process.pid) == []
    assert (await api.delete(base)).status == 204


@pytest.mark.parametrize("vpcs_backend", ["builtin"], indirect=True)
async def test_killed_server_leaves_no_engine(server: tuple[ApiClient, ServerProcess]) -> None:
    """A server killed with SIGKILL cannot stop anything itself: the kernel ends its engine workers."""
    api, process = server
    project = (await api.post("/v1/projects", {"name": "killed"})).json
    base = f"/v1/projects/{project['project_id']}"
    vm = (await api.post(f"{base}/vpcs/vms", {"name": "PC1"})).json
    port = (await api.post(f"{base}/ports/udp")).json["udp_port"]
    nio = {"type": "nio_udp", "lport": port, "rhost": "127.0.0.1", "rport": port + 1}
    assert (await api.post(f"{base}/vpcs/vms/{vm['vm_id']}/adapters/0/ports/0/nio", nio)).status == 201
    assert (await api.post(f"{base}/vpcs/vms/{vm['vm_id']}/start")).status == 200
    workers = engine_workers(process.pid)
    assert len(workers) == 1
    control = workers[0].cmdline()[workers[0].cmdline().index("--control") + 1]
    directory = Path(control).parent
    assert directory.is_dir() and directory.name.startswith("gns3-vpcs-engine-")
    os.kill(process.pid, signal.SIGKILL)  # the server alone: ServerProcess.kill() would end its children itself
    _, alive = psutil.wait_procs(workers, timeout=10)
    for left in alive:
        left.kill()
    assert alive == [], "an engine worker outlived its server"
    assert not directory.exists()  # the orphaned worker removed the server's engine directory on its way out
