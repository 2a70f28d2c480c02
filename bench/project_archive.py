"""Portable project export and import against a real `gns3server`: speed, and server memory while a large project
is streamed to a fast client and to a slow one. Prints one JSON object.

    python bench/project_archive.py [--size-mb 512] [--files 8] [--slow-mb-per-s 20]

The project holds `--files` files of random (incompressible) bytes, `--size-mb` in total. Memory is the server's
resident set, sampled every 20 ms: `rss_growth_mb` is the peak during a transfer minus the resident set before it.
Export memory must not grow with the project's size (compare two `--size-mb`); the slow client shows that the server
waits for the reader instead of buffering the archive.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from gns3core.testing.server import ServerProcess, write_config

CHUNK = 1024 * 1024


class PeakRSS:
    """The peak resident set of a process while the block runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.before) / 2 ** 20, 1)


def fill(root: Path, size_mb: int, files: int) -> None:
    folder = root / "project-files" / "qemu" / "00000000-0000-4000-8000-000000000001"
    folder.mkdir(parents=True, exist_ok=True)
    per_file = size_mb // files
    for index in range(files):
        with open(folder / f"disk{index}.qcow2", "wb") as handle:
            for _ in range(per_file):
                handle.write(os.urandom(CHUNK))


def download(url: str, target: Path, mb_per_s: float | None = None, limit_mb: float | None = None) -> float:
    """Seconds to download url into target; a slow client reads at most `mb_per_s` and hangs up after `limit_mb`."""
    start = time.perf_counter()
    received = 0
    with urllib.request.urlopen(url, timeout=600) as reply, open(target, "wb") as out:
        while chunk := reply.read(64 * 1024):
            out.write(chunk)
            received += len(chunk)
            if mb_per_s:
                time.sleep(len(chunk) / (mb_per_s * 2 ** 20))
            if limit_mb and received >= limit_mb * 2 ** 20:
                break
    return time.perf_counter() - start


def upload(url: str, source: Path) -> tuple[int, float]:
    start = time.perf_counter()
    with open(source, "rb") as body:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/octet-stream",
                                                  "Content-Length": str(source.stat().st_size)})
        with urllib.request.urlopen(request, timeout=600) as reply:
            status = reply.status
    return status, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--slow-mb-per-s", type=float, default=20.0)
    parser.add_argument("--slow-mb", type=float, default=128.0, help="how much the slow client reads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gns3-bench-archive-") as tmp:
        workdir = Path(tmp)
        server = ServerProcess(write_config(workdir / "gns3_server.conf", workdir), plugins="vpcs").start()
        try:
            status, project = server.request("POST", "/v1/projects", {"name": "bench"})
            assert status == 201, project
            fill(Path(project["path"]), args.size_mb, args.files)
            export_url = f"{server.url}/v1/projects/{project['project_id']}/export"
            archive = workdir / "bench.gns3project"
            with PeakRSS(server.pid) as fast:
                fast_seconds = download(export_url, archive)
            with PeakRSS(server.pid) as slow:
                download(export_url, workdir / "slow.gns3project", args.slow_mb_per_s, args.slow_mb)
            status, target = server.request("POST", "/v1/projects", {"name": "copy"})
            with PeakRSS(server.pid) as imported:
                import_status, import_seconds = upload(
                    f"{server.url}/v1/projects/{target['project_id']}/import?gns3vm=0", archive)
            result = {
                "project_mb": args.size_mb,
                "archive_mb": round(archive.stat().st_size / 2 ** 20, 1),
                "export_seconds": round(fast_seconds, 2),
                "export_mb_per_s": round(args.size_mb / fast_seconds, 1),
                "export_rss_growth_mb": fast.growth_mb,
                "slow_client_mb_per_s": args.slow_mb_per_s,
                "slow_client_read_mb": args.slow_mb,
                "slow_export_rss_growth_mb": slow.growth_mb,
                "import_status": import_status,
                "import_seconds": round(import_seconds, 2),
                "import_mb_per_s": round(args.size_mb / import_seconds, 1),
                "import_rss_growth_mb": imported.growth_mb,
                "server_rss_mb": round(psutil.Process(server.pid).memory_info().rss / 2 ** 20, 1),
            }
        finally:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
