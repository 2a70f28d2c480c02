"""A built-in PC beside a Docker node: it gets its address from busybox `udhcpd` running in the container, then
pings it.

The container runs on a private dockerd started for this module (tests/docker/dockerd.py), from an image imported
offline: one static busybox with the applets used here. (Debian's vpcs 0.5b2 cannot be the reference here: it
drops broadcast IPv4 frames, and udhcpd broadcasts its offers, so 0.5b2 prints `DDD Can't find dhcp server`. The
built-in PC prints what vpcs prints when it succeeds: a letter per DHCP message, then the address.)
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gns3_docker.plugin
import gns3_vpcs.plugin
import pytest
from vpcs_helpers import Console

from gns3core.testing.client import ApiClient

sys.path.insert(0, str(Path(__file__).parent.parent / "docker"))

from docker_helpers import Console as ShellConsole  # noqa: E402
from dockerd import Dockerd, dockerd_missing_reason, engine_call, start_dockerd  # noqa: E402

pytestmark = pytest.mark.timeout(300)

IMAGE = "gns3test/busybox-dhcp:latest"
APPLETS = ("sh", "ip", "udhcpd", "ping", "sleep", "cat", "echo", "printf", "touch", "mkdir", "ls", "ps")
UDHCPD_CONF = ("start {net}.100\\nend {net}.110\\ninterface {dev}\\nlease_file /tmp/{dev}.leases\\n"
               "pidfile /tmp/{dev}.pid\\nopt subnet 255.255.255.0\\nopt router {net}.1\\nopt lease 600\\n")


def image_tar() -> bytes:
    busybox = shutil.which("busybox")
    assert busybox is not None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "var", "var/run", "var/lib", "var/lib/misc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(os.path.realpath(busybox), arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[Dockerd]:
    reason = dockerd_missing_reason() or (None if shutil.which("busybox") else "busybox is not installed")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="gns3-dockerd-", dir="/tmp"))
    daemon = start_dockerd(base)
    try:
        repo, _, tag = IMAGE.rpartition(":")
        query = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag, "changes": 'CMD ["/bin/sh"]'})
        status, raw = engine_call(daemon.socket_path, "POST", f"/images/create?{query}", image_tar(),
                                  headers={"Content-Type": "application/x-tar"}, timeout=120)
        assert status == 200 and b'"error"' not in raw, raw[-500:]
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def vpcs_backend() -> str:
    return "builtin"


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_vpcs.plugin, gns3_docker.plugin]


@pytest.fixture
def gns3_config_overrides(gns3_config_overrides: dict[str, dict[str, str]],
                          docker_engine: Dockerd) -> dict[str, dict[str, str]]:
    return {**gns3_config_overrides, "Docker": {"docker_host": docker_engine.docker_host}}


async def test_dhcp_and_ping_with_a_container(api: ApiClient, project: dict[str, Any]) -> None:
    pid = project["project_id"]
    box_port, engine_port = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"] for _ in range(2)]
    box = (await api.post(f"/v1/projects/{pid}/docker/images", {"name": "dhcp", "imagename": IMAGE,
                                                                 "adapters": 1})).json
    box_url = f"/v1/projects/{pid}/docker/images/{box['vm_id']}"
    nio = {"type": "nio_udp", "lport": box_port, "rhost": "127.0.0.1", "rport": engine_port}
    assert (await api.post(f"{box_url}/adapters/0/ports/0/nio", nio)).status == 201
    vm = (await api.post(f"/v1/projects/{pid}/vpcs/vms", {"name": "engine"})).json
    vm_url = f"/v1/projects/{pid}/vpcs/vms/{vm['vm_id']}"
    nio = {"type": "nio_udp", "lport": engine_port, "rhost": "127.0.0.1", "rport": box_port}
    assert (await api.post(f"{vm_url}/adapters/0/ports/0/nio", nio)).status == 201
    try:
        assert (await api.post(f"{box_url}/start")).status in (200, 204)
        shell = await ShellConsole.connect(box["console"])
        try:
            conf = UDHCPD_CONF.format(dev="eth0", net="10.9.0")
            out = await shell.run(f"ip link set eth0 up && ip addr add 10.9.0.1/24 dev eth0 && "
                                  f"printf '{conf}' > /tmp/eth0.conf && touch /tmp/eth0.leases && "
                                  f"udhcpd /tmp/eth0.conf && ps")
            assert "udhcpd" in out, out
        finally:
            await shell.close()
        assert (await api.post(f"{vm_url}/start")).status == 200
        console = await Console.open(vm["console"])
        try:
            await console.prompt()
            said = (await console.command("ip dhcp", timeout=40)).split("\n")
            assert said[0] == "ip dhcp", said
            # udhcpd probes the address (ARP) before offering it, so the first discover may go unanswered: D+
            assert re.fullmatch(r"D+ORA IP 10\.9\.0\.1(0\d|10)/24 GW 10\.9\.0\.1", said[1]), said
            address = re.search(r"IP (10\.9\.0\.\d+)/", said[1]).group(1)
            shown = await console.command("show ip")
            for line in (f"IP/MASK     : {address}/24", "GATEWAY     : 10.9.0.1", "DHCP SERVER : 10.9.0.1",
                         "MTU:        : 1500"):
                assert line in shown, shown
            assert re.search(r"DHCP LEASE  : \d+, 600/300/525", shown), shown
            output = await console.command("ping 10.9.0.1 -c 3")
            assert len(re.findall(r"10\.9\.0\.1 icmp_seq=\d ttl=64 time=", output)) >= 2, output
            assert ".  done" in await console.command("save")
            assert (await api.get(vm_url)).json["startup_script"] == "dhcp\n"
            await console.command("dhcp -x")
            assert "IP/MASK     : 0.0.0.0/0" in await console.command("show ip")
        finally:
            await console.close()
    finally:
        await api.post(f"{vm_url}/stop")
        await api.delete(box_url)
