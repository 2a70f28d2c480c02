"""A private Docker Engine for tests and CI: its own data root, exec root, pidfile and socket under one directory.

Nothing on a CI machine starts dockerd, and the tests must not touch a system engine, so they start one of their
own (no iptables rules, no docker0 bridge, vfs storage which works on any filesystem) and stop it by PID, together
with the containerd it spawned and any shim left behind.

Also usable from a shell:  python tests/docker/dockerd.py start DIR   /   python tests/docker/dockerd.py stop DIR
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from gns3_docker.busybox_image import IMAGE_COMMAND, build_rootfs_tar

TEST_IMAGE = "gns3test/busybox:latest"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the Engine API's usual transport); no extra dependency needed."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def engine_call(socket_path: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
    """One Engine API request; returns (status, raw body)."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Dockerd:
    """A running private dockerd."""

    base: Path
    process: subprocess.Popen | None
    pid: int

    @property
    def socket_path(self) -> str:
        return str(self.base / "docker.sock")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.base / "dockerd.log"

    def call(self, method: str, path: str, body: bytes | None = None, **kwargs) -> tuple[int, bytes]:
        return engine_call(self.socket_path, method, path, body, **kwargs)

    def containers(self) -> list[dict]:
        """Every container of this engine, running or not."""
        status, raw = self.call("GET", "/containers/json?all=1")
        if status != 200:
            raise RuntimeError(f"listing containers failed: {status} {raw!r}")
        return json.loads(raw)

    def stop(self, timeout: float = 20.0) -> None:
        stop_dockerd(self.base, timeout)


def dockerd_missing_reason() -> str | None:
    """Why a private engine cannot be started here, or None when it can."""
    for program, package in (("dockerd", "docker.io"), ("containerd", "containerd"), ("runc", "runc")):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install -y --no-install-recommends {package})"
    if os.geteuid() != 0:
        return "dockerd needs root"
    return None


def start_dockerd(base: Path, timeout: float = 30.0) -> Dockerd:
    """Start dockerd with everything under `base`; returns once the API answers (RuntimeError with its log if not)."""
    base = Path(base)
    for sub in ("root", "exec"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    argv = [
        shutil.which("dockerd") or "dockerd",
        "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
        "--ip-masq=false", f"--data-root={base / 'root'}", f"--exec-root={base / 'exec'}",
        f"--pidfile={base / 'docker.pid'}", f"--host=unix://{base / 'docker.sock'}",
    ]
    log = open(base / "dockerd.log", "ab")  # noqa: SIM115 - kept by the child, closed below
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    finally:
        log.close()
    (base / "dockerd.launcher-pid").write_text(str(process.pid))
    daemon = Dockerd(base, process, process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}:\n{_tail(daemon.log_path)}")
        try:
            status, _ = daemon.call("GET", "/_ping", timeout=2)
            if status == 200:
                return daemon
        except OSError:
            pass
        time.sleep(0.1)
    stop_dockerd(base)
    raise RuntimeError(f"dockerd did not answer within {timeout} s:\n{_tail(daemon.log_path)}")


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _shims_of(exec_root: Path) -> list[int]:
    """containerd shims started for this engine (their -address points into our exec root)."""
    marker = str(exec_root)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = _cmdline(int(entry))
            if argv and "containerd-shim" in argv[0] and any(marker in arg for arg in argv):
                found.append(int(entry))
    return found


def _terminate(pids: list[int], timeout: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_dockerd(base: Path, timeout: float = 20.0) -> None:
    """Stop the engine started in `base` by PID, then its containerd and any leftover shim, also by PID."""
    base = Path(base)
    pid = _read_pid(base / "docker.pid") or _read_pid(base / "dockerd.launcher-pid")
    containerd = [p for p in (_children(pid) if pid else []) if "containerd" in (_cmdline(p) or [""])[0]]
    if pid and _alive(pid):
        _terminate([pid], timeout)
        try:
            os.waitpid(pid, 0)  # reap it when it is our child
        except ChildProcessError:
            pass
    _terminate([p for p in containerd if _alive(p)], 5)
    _terminate(_shims_of(base / "exec"), 5)
    # dockerd bind-mounts its data root on itself; a daemon stopped early in its start-up can leave that behind
    if os.path.ismount(base / "root"):
        subprocess.run(["umount", str(base / "root")], check=False, capture_output=True)


def import_test_image(socket_path: str, reference: str = TEST_IMAGE) -> None:
    """`docker import` of the plugin's offline busybox image (gns3_docker.busybox_image) through the Engine API
    (POST /images/create?fromSrc=-): no registry is needed."""
    repo, _, tag = reference.rpartition(":")
    query = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag,
                                    "changes": f"CMD {IMAGE_COMMAND}"})
    status, raw = engine_call(socket_path, "POST", f"/images/create?{query}", build_rootfs_tar(),
                              headers={"Content-Type": "application/x-tar"}, timeout=120)
    if status != 200 or b'"error"' in raw:
        raise RuntimeError(f"importing {reference} failed: {status} {raw[-500:]!r}")


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: dockerd.py start|stop DIR", file=sys.stderr)
        return 2
    base = Path(argv[1]).resolve()
    if argv[0] == "stop":
        stop_dockerd(base)
        return 0
    daemon = start_dockerd(base)
    import_test_image(daemon.socket_path)
    if daemon.process is not None:
        daemon.process.returncode = 0  # detach: the caller stops it with "stop DIR"
    print(f"export DOCKER_HOST={daemon.docker_host}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
