"""A real `gns3server` process for end-to-end tests and benchmarks: started on loopback, stopped for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import psutil

from gns3core.testing.ports import free_tcp_port


def write_config(path: Path, workdir: Path, **sections: dict[str, object]) -> Path:
    """An INI file with projects and images under `workdir`, plus the given sections' keys."""
    server = {"projects_path": workdir / "projects", "images_path": workdir / "images", **sections.pop("Server", {})}
    lines = ["[Server]", *(f"{key} = {value}" for key, value in server.items())]
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{key} = {value}" for key, value in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class ServerProcess:
    """`gns3server --host 127.0.0.1 --port PORT --config FILE ARGS...` in a session of its own.

    `plugins` restricts the plugins it loads (GNS3_PLUGINS); `log` receives its output (default: discarded).
    """

    def __init__(self, config: Path, *, port: int | None = None, args: Sequence[str] = ("--local", "--quiet"),
                 plugins: str | None = None, env: dict[str, str] | None = None, log: Path | None = None,
                 command: Sequence[str] | None = None) -> None:
        self.port = port or free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.argv = [*(command or (sys.executable, "-m", "gns3core")), "--host", "127.0.0.1", "--port",
                     str(self.port), "--config", str(config), *args]
        self.env = dict(env if env is not None else os.environ)
        if plugins is not None:
            self.env["GNS3_PLUGINS"] = plugins
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "start() first"
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log is not None and self.log.exists() else ""

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server and return once `GET /v1/version` answers; RuntimeError (server killed) otherwise."""
        out = open(self.log, "wb") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log is not None:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gns3server exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if self.request("GET", "/v1/version", timeout=1)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gns3server did not answer within {timeout:.0f} s: {self.output()[-2000:]}")

    def request(self, method: str, path: str, body: object = None, timeout: float = 10.0) -> tuple[int, object]:
        """One blocking API call: (status, decoded JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, (json.loads(raw) if raw else None)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the server then stops its emulators), SIGKILL after `timeout`; the return code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """Clean-up after a failure: the server and every process it started, even in sessions of their own."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
