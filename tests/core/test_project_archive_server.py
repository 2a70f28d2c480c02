"""Export against a real `gns3server` process: the archive is not held in memory, and a client that hangs up stops
the work (figures: bench/project_archive.py)."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil
import pytest

from gns3core.testing.server import ServerProcess, write_config

PROJECT_MB = 96


@pytest.fixture
def server(tmp_path: Path):
    process = ServerProcess(write_config(tmp_path / "gns3_server.conf", tmp_path), plugins="vpcs",
                            log=tmp_path / "server.log").start()
    yield process
    process.stop()


def big_project(server: ServerProcess) -> dict:
    status, project = server.request("POST", "/v1/projects", {"name": "big"})
    assert status == 201
    folder = Path(project["path"]) / "project-files" / "qemu" / "00000000-0000-4000-8000-000000000001"
    folder.mkdir(parents=True)
    with open(folder / "hda_disk.qcow2", "wb") as handle:  # random bytes: the archive is as large as the project
        for _ in range(PROJECT_MB):
            handle.write(os.urandom(1024 * 1024))
    return project


@pytest.mark.timeout(600)
def test_a_slow_reader_does_not_make_the_server_buffer(server: ServerProcess, tmp_path: Path) -> None:
    project = big_project(server)
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    peak = before
    received = 0
    url = f"{server.url}/v1/projects/{project['project_id']}/export"
    with urllib.request.urlopen(url, timeout=120) as reply, open(tmp_path / "big.gns3project", "wb") as out:
        while chunk := reply.read(256 * 1024):
            out.write(chunk)
            received += len(chunk)
            peak = max(peak, process.memory_info().rss)
            if received < 24 * 1024 * 1024:
                time.sleep(0.05)  # 5 MB/s for the first quarter: slower than the server writes
    assert received > PROJECT_MB * 1024 * 1024
    with zipfile.ZipFile(tmp_path / "big.gns3project") as archive:
        assert archive.testzip() is None
        assert archive.getinfo("project-files/qemu/00000000-0000-4000-8000-000000000001/hda_disk.qcow2").file_size \
            == PROJECT_MB * 1024 * 1024
    # Holding the archive would cost ~96 MB; the chunks in flight and zlib's buffers cost a few.
    assert (peak - before) / 2 ** 20 < 40, f"the server grew by {(peak - before) / 2 ** 20:.0f} MB"


@pytest.mark.timeout(600)
def test_a_client_that_hangs_up_stops_the_export(server: ServerProcess) -> None:
    project = big_project(server)
    process = psutil.Process(server.pid)
    request = (f"GET /v1/projects/{project['project_id']}/export HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(request)
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        # Hang up after the first bytes, long before the archive is done.
    deadline = time.monotonic() + 60
    while True:  # the worker notices within its polling interval and stops compressing
        cpu = process.cpu_times()
        time.sleep(1.0)
        used = sum(process.cpu_times()[:2]) - sum(cpu[:2])
        if used < 0.2:
            break
        assert time.monotonic() < deadline, f"the server still works for a client that left ({used:.2f} s CPU/s)"
    assert server.request("GET", "/v1/version")[0] == 200
    status, body = server.request("GET", f"/v1/projects/{project['project_id']}")
    assert status == 200 and body["name"] == "big"
