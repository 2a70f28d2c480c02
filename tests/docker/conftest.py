"""Docker tests run against a private dockerd started for the session (see dockerd.py) and the Docker plugin only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gns3_docker.plugin
import pytest
from dockerd import Dockerd, dockerd_missing_reason, import_test_image, start_dockerd


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Dockerd]:
    """A private engine with the busybox test image; skipped without dockerd, except under CI where it fails."""
    reason = dockerd_missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="gns3-dockerd-", dir="/tmp"))  # short: unix socket paths are limited
    daemon = start_dockerd(base)
    try:
        import_test_image(daemon.socket_path)
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def gns3_plugins() -> list:
    return [gns3_docker.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


# Tunnel ports of this run's own: other test runs on the machine (and their servers) hand out from 10000 up, and a
# port one server found free may be bound by another before the data plane binds it.
UDP_BASE = 20000 + (os.getpid() % 12) * 1000


@pytest.fixture
def gns3_config_overrides(docker_engine: Dockerd) -> dict[str, dict[str, str]]:
    return {"Docker": {"docker_host": docker_engine.docker_host},
            "Server": {"udp_start_port_range": str(UDP_BASE), "udp_end_port_range": str(UDP_BASE + 999)}}


@pytest.fixture(autouse=True)
def no_container_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the engine (and its server is gone), none of our containers may remain."""
    yield
    if "docker_engine" not in request.fixturenames:
        return
    engine: Dockerd = request.getfixturevalue("docker_engine")
    left = [c for c in engine.containers() if "org.gns3.vm_id" in (c.get("Labels") or {})]
    for container in left:  # remove them so one failure does not cascade, then fail
        engine.call("DELETE", f"/containers/{container['Id']}?force=1")
    assert not left, f"containers left behind: {[c['Names'] for c in left]}"
