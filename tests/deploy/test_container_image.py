"""The server's container image (deploy/container/build-image.sh) under a private Docker Engine: imported by the
script itself, started without a network of its own, answering `GET /v1/version` only with credentials, with the
emulators Debian ships inside; and refusing to start without a password.

The root filesystem is built once (3-6 minutes: apt downloads and unpacks qemu, dynamips, vpcs and Python) into
`build/container/rootfs.tar`, or taken from `GNS3_IMAGE_ROOTFS`, and reused by later runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gns3core.testing import require

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "docker"))

from dockerd import dockerd_missing_reason, start_dockerd, stop_dockerd  # noqa: E402

pytestmark = pytest.mark.timeout(1200)
TAG = "gns3core/server:test"


def docker(daemon_host: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], env={**os.environ, "DOCKER_HOST": daemon_host}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.returncode} {proc.stderr.strip()}")
    return proc


@pytest.fixture(scope="module")
def rootfs() -> Path:
    """The image's root filesystem tarball, built by the script when missing."""
    given = os.environ.get("GNS3_IMAGE_ROOTFS")
    if given:
        require(Path(given).is_file(), f"GNS3_IMAGE_ROOTFS names {given}, which does not exist")
        return Path(given)
    tarball = ROOT / "build" / "container" / "rootfs.tar"
    if not (tarball.is_file() and tarball.stat().st_size > 0):
        require(os.geteuid() == 0, "building the image needs root (mmdebstrap)")
        require(shutil.which("mmdebstrap") is not None or shutil.which("apt-get") is not None,
                "mmdebstrap cannot be installed here (apt-get install mmdebstrap)")
        build = subprocess.run(["bash", str(ROOT / "deploy" / "container" / "build-image.sh")],
                               env={**os.environ, "NO_IMPORT": "1"}, capture_output=True, text=True, timeout=1100,
                               check=False)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tarball


@pytest.fixture(scope="module")
def engine(rootfs: Path, tmp_path_factory: pytest.TempPathFactory):
    reason = dockerd_missing_reason()
    require(reason is None, reason or "")
    require(shutil.which("docker") is not None, "the docker command is not installed (apt-get install docker.io)")
    base = tmp_path_factory.mktemp("dockerd")
    daemon = start_dockerd(base)
    try:
        env = {**os.environ, "DOCKER_HOST": daemon.docker_host, "REUSE_ROOTFS": "1",
               "BUILD_DIR": str(rootfs.parent)}
        imported = subprocess.run(["bash", str(ROOT / "deploy" / "container" / "build-image.sh"), TAG], env=env,
                                  capture_output=True, text=True, timeout=600, check=False)
        assert imported.returncode == 0, imported.stdout[-2000:] + imported.stderr[-2000:]
        assert f"{TAG}: " in imported.stdout and " MiB" in imported.stdout, imported.stdout
        yield daemon.docker_host
    finally:
        for line in docker(daemon.docker_host, "ps", "-aq", check=False).stdout.split():
            docker(daemon.docker_host, "rm", "-f", line, check=False)
        stop_dockerd(base)


def test_image_serves_the_api_with_authentication_only(engine: str) -> None:
    password = secrets.token_hex(8)
    container = docker(engine, "run", "-d", "--network", "none", "-e", "GNS3_HOST=127.0.0.1", "-e", "GNS3_PORT=8000",
                       "-e", f"GNS3_PASSWORD={password}", TAG).stdout.strip()
    try:
        probe = ("import time, urllib.request, base64, sys\n"
                 "url = 'http://127.0.0.1:8000/v1/version'\n"
                 "token = base64.b64encode(sys.argv[1].encode()).decode()\n"
                 "for _ in range(150):\n"
                 "    try:\n"
                 "        reply = urllib.request.urlopen(urllib.request.Request(\n"
                 "            url, headers={'Authorization': 'Basic ' + token}), timeout=2)\n"
                 "        print(reply.status, reply.read().decode()); break\n"
                 "    except OSError as exc:\n"
                 "        last = exc; time.sleep(0.2)\n"
                 "else:\n"
                 "    print('no answer', last)\n")
        answer = docker(engine, "exec", container, "/opt/gns3/bin/python", "-c", probe, f"admin:{password}").stdout
        status, _, body = answer.strip().partition(" ")
        assert status == "200", answer + docker(engine, "logs", container, check=False).stderr[-2000:]
        assert json.loads(body)["version"]
        refused = docker(engine, "exec", container, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "http://127.0.0.1:8000/v1/version").stdout
        assert refused == "401"
        listing = docker(engine, "exec", container, "gns3server", "--list-plugins").stdout
        for kind in ("vpcs", "qemu", "dynamips"):
            line = next((row for row in listing.splitlines() if row.strip().lower().startswith(kind)), "")
            assert line and "not found" not in line.lower(), listing
        config = docker(engine, "exec", container, "cat", "/run/gns3/gns3_server.conf").stdout
        assert "auth = true" in config and "host = 127.0.0.1" in config
    finally:
        docker(engine, "rm", "-f", container, check=False)


def test_image_refuses_to_start_without_a_password(engine: str) -> None:
    run = docker(engine, "run", "--rm", "--network", "none", "-e", "GNS3_HOST=127.0.0.1", TAG, check=False,
                 timeout=60)
    assert run.returncode != 0 and "set GNS3_PASSWORD" in run.stderr, run.stderr
