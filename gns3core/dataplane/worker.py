"""Bridges that forward in a worker process, so busy bridges are not limited to the one core the GIL allows.

The server process still opens (and finally removes) the endpoints; it hands their descriptors to a fresh
``python -m gns3core.dataplane`` that runs the same relay threads as a thread bridge. Capture, impairments
and statistics are driven over a SOCK_SEQPACKET control socket carrying one JSON message per request. The worker
exits when told to or when the control socket closes (the server died), so it can never be orphaned for long.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from . import endpoints as endpoint_module
from . import netio as netio_module
from .bridge import _DIRECTION_NAMES, Bridge
from .capture import link_type
from .endpoints import Endpoint
from .errors import DataPlaneError
from .impairments import Impairments

log = logging.getLogger(__name__)

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MESSAGE_MAX = 1 << 20
_STOP_TIMEOUT = 10.0
_COUNTER_KEYS = [f"{kind}_{name}" for name in _DIRECTION_NAMES for kind in ("frames", "bytes", "dropped", "errors")]


class ProcessBridge(Bridge):
    """A Bridge whose relay threads live in a worker process (same public API as Bridge)."""

    def __init__(self, name: str, a: Endpoint, b: Endpoint) -> None:
        super().__init__(name, a, b)
        self._proc: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self._ctl_lock = threading.Lock()
        self._capture_spec: tuple[str, str | int] | None = None
        self._base = dict.fromkeys(_COUNTER_KEYS, 0)
        self._captured_base = 0

    # -- public API, forwarded to the worker --------------------------------------------------------------------

    @property
    def capturing(self) -> bool:
        return self._capture_spec is not None

    @property
    def capture_file(self) -> str | None:
        return self._capture_spec[0] if self._capture_spec is not None else None

    @property
    def pid(self) -> int | None:
        """PID of the worker process forwarding this bridge."""
        return self._proc.pid if self._proc is not None else None

    def start_capture(self, path: str, data_link_type: str | int = "DLT_EN10MB") -> None:
        if self._closed:
            raise DataPlaneError(f"Bridge {self.name} is closed")
        link_type(data_link_type)  # refuse unknown names here, with the same message as a thread bridge
        path = os.path.abspath(path)
        self._request({"op": "capture", "path": path, "dlt": data_link_type, "append": False})
        self._capture_spec = (path, data_link_type)
        self._captured_base = 0

    def stop_capture(self) -> None:
        if self._capture_spec is None:
            return
        self._capture_spec = None
        if self._ctl is not None:
            self._request({"op": "stop_capture"})

    def set_impairments(self, impairments: Impairments | None = None, **values: Any) -> None:
        super().set_impairments(impairments, **values)
        self._impairer = None  # applied by the worker, not here
        if self._ctl is not None:
            self._request({"op": "impair", "settings": _impairment_dict(self._impairments)})

    @property
    def stats(self) -> dict[str, int]:
        live = self._request({"op": "stats"})["stats"] if self._ctl is not None else {}
        result = {key: self._base[key] + live.get(key, 0) for key in _COUNTER_KEYS}
        result["dropped"] = result["dropped_a_to_b"] + result["dropped_b_to_a"]
        result["errors"] = result["errors_a_to_b"] + result["errors_b_to_a"]
        result["delayed"] = live.get("delayed", 0)
        result["captured"] = (self._captured_base + live.get("captured", 0)) if self._capture_spec else 0
        return result

    # -- worker lifecycle (replaces the relay threads of Bridge) ------------------------------------------------

    def _start_threads(self) -> None:
        fds: list[int] = []
        ends = []
        for endpoint in self._ends:
            endpoint_fds, state = endpoint.export()
            fds += endpoint_fds
            ends.append({"class": type(endpoint).__name__, "args": endpoint.init_args(), "fds": endpoint_fds,
                         "state": state})
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        try:
            proc = subprocess.Popen([sys.executable, "-m", "gns3core.dataplane", str(child.fileno())],
                                    pass_fds=[child.fileno(), *fds], stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            parent.close()
            child.close()
            raise DataPlaneError(f"Cannot start a worker process for bridge {self.name}: {exc}") from None
        child.close()
        self._proc, self._ctl = proc, parent
        hello = {"name": self.name, "ends": ends, "impairments": _impairment_dict(self._impairments),
                 "capture": None}
        if self._capture_spec is not None:
            hello["capture"] = {"path": self._capture_spec[0], "dlt": self._capture_spec[1], "append": True}
        try:
            self._request(hello)
        except DataPlaneError:
            self._reap()
            raise

    def _stop_threads(self, final: bool = False) -> None:
        if self._ctl is None:
            return
        try:
            reply = self._request({"op": "stop"})
            for key in _COUNTER_KEYS:
                self._base[key] += reply["stats"].get(key, 0)
            self._captured_base += reply["stats"].get("captured", 0)
        except DataPlaneError as exc:
            log.warning("bridge %s: worker did not stop cleanly: %s", self.name, exc)
        self._reap()

    def _reap(self) -> None:
        proc, ctl = self._proc, self._ctl
        self._proc, self._ctl = None, None
        if ctl is not None:
            ctl.close()  # the worker exits on EOF even if it missed the stop request
        if proc is not None:
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _request(self, message: dict) -> dict:
        with self._ctl_lock:
            ctl = self._ctl
            if ctl is None:
                raise DataPlaneError(f"Bridge {self.name} has no worker process")
            try:
                ctl.sendall(json.dumps(message).encode())
                ctl.settimeout(_STOP_TIMEOUT)
                data = ctl.recv(_MESSAGE_MAX)
            except OSError as exc:
                raise DataPlaneError(f"Bridge {self.name}: worker process not responding: {exc}") from None
        if not data:
            raise DataPlaneError(f"Bridge {self.name}: worker process exited unexpectedly")
        reply = json.loads(data)
        if "error" in reply:
            raise DataPlaneError(reply["error"])
        return reply


def _impairment_dict(settings: Impairments) -> dict:
    return {"loss_percent": settings.loss_percent, "delay_ms": settings.delay_ms, "jitter_ms": settings.jitter_ms,
            "corrupt_percent": settings.corrupt_percent, "drop_every": settings.drop_every}


def _adopt_endpoint(spec: dict) -> Endpoint:
    cls = getattr(endpoint_module, spec["class"], None) or getattr(netio_module, spec["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, Endpoint)):
        raise DataPlaneError(f"Unknown endpoint class {spec['class']}")
    endpoint = cls(**spec["args"])
    endpoint._adopt(spec["fds"], spec["state"])
    return endpoint


def _raw_stats(bridge: Bridge) -> dict:
    stats = Bridge.stats.fget(bridge)
    return {key: stats[key] for key in [*_COUNTER_KEYS, "delayed", "captured"]}


def serve(ctl: socket.socket) -> None:
    """Worker side: build the bridge from the hello message, then answer requests until told to stop."""
    hello = json.loads(ctl.recv(_MESSAGE_MAX) or b"null")
    if not hello:
        return
    try:
        bridge = Bridge(hello["name"], *(_adopt_endpoint(spec) for spec in hello["ends"]))
        bridge.set_impairments(Impairments(**hello["impairments"]))
        capture = hello["capture"]
        if capture:
            bridge._open_capture(capture["path"], capture["dlt"], capture["append"])
        bridge._start_threads()
    except DataPlaneError as exc:
        ctl.sendall(json.dumps({"error": str(exc)}).encode())
        return
    ctl.sendall(b'{"ok": true}')
    while True:
        data = ctl.recv(_MESSAGE_MAX)
        request = json.loads(data) if data else {"op": "stop"}
        op = request.get("op")
        reply: dict = {"ok": True}
        try:
            if op == "capture":
                bridge._open_capture(request["path"], request["dlt"], request["append"])
            elif op == "stop_capture":
                bridge.stop_capture()
            elif op == "impair":
                bridge.set_impairments(Impairments(**request["settings"]))
            elif op == "stats":
                reply["stats"] = _raw_stats(bridge)
            elif op == "stop":
                bridge._stop_threads()
                if bridge._delay is not None:
                    bridge._delay.stop()
                reply["stats"] = _raw_stats(bridge)
                bridge.stop_capture()
                for endpoint in bridge._ends:
                    endpoint.close()  # borrowed copies: closes our descriptors only
                if data:
                    ctl.sendall(json.dumps(reply).encode())
                return
            else:
                reply = {"error": f"unknown request {op!r}"}
        except DataPlaneError as exc:
            reply = {"error": str(exc)}
        ctl.sendall(json.dumps(reply).encode())


def main() -> None:
    """Entry point of ``python -m gns3core.dataplane CONTROL_FD``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which then stops us
    logging.basicConfig(level=logging.WARNING, format="dataplane worker %(process)d: %(message)s")
    ctl = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(ctl)
    finally:
        ctl.close()
