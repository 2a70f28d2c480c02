"""Bridges that forward in a worker process, so busy bridges are not limited to the one core the GIL allows.

The server process still opens (and finally removes) the endpoints; it hands their descriptors to a fresh
``python -m gns3core.dataplane`` that runs the same relay threads as a thread bridge. Capture, impairments
and statistics are driven over a SOCK_SEQPACKET control socket carrying one JSON message per request. The worker
exits when told to or when the control socket closes (the server died), so it can never be orphaned for long.

A shared worker (``SharedWorker``) forwards many bridges in one such process: a control socket and a thread each
answer requests, and one poller thread (poller.py) forwards every bridge's frames. It is for many light links (the
real vpcs's MAC relays) whose frames must not wait for the server's event loop and GIL, at the cost of one process
in all instead of one per bridge.
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
from .poller import PolledBridge, Poller

log = logging.getLogger(__name__)

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MESSAGE_MAX = 1 << 20
_STOP_TIMEOUT = 10.0
_COUNTER_KEYS = [f"{kind}_{name}" for name in _DIRECTION_NAMES for kind in ("frames", "bytes", "dropped", "errors")]


class ProcessBridge(Bridge):
    """A Bridge whose relay threads live in a worker process (same public API as Bridge)."""

    def __init__(self, name: str, a: Endpoint, b: Endpoint, *, shared: SharedWorker | None = None) -> None:
        """`shared`: forward in that shared worker process instead of a process of its own."""
        super().__init__(name, a, b)
        self._shared = shared
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
        if self._shared is not None:
            return self._shared.pid if self._ctl is not None else None
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
        try:
            if self._shared is not None:
                self._shared.attach(self.name, child, fds)
                proc = None
            else:
                proc = _spawn([str(child.fileno())], [child.fileno(), *fds])
        except DataPlaneError as exc:
            parent.close()
            raise DataPlaneError(f"Cannot start a worker process for bridge {self.name}: {exc}") from None
        finally:
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
        _end_worker(ctl, proc)  # the worker exits on EOF even if it missed the stop request

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


class SharedWorker:
    """One worker process for many bridges, started at the first bridge and ended by close() (or when the server
    dies: its control sockets then close). A bridge hands it its control socket and endpoint descriptors."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._master: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def attach(self, name: str, ctl: socket.socket, fds: list[int]) -> None:
        """Give the worker one bridge's control socket and descriptors (copies: ours stay open); starts the worker
        again if it ended."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            assert self._master is not None
            try:
                socket.send_fds(self._master, [json.dumps({"name": name, "fds": fds}).encode()], [ctl.fileno(), *fds])
            except OSError as exc:
                raise DataPlaneError(f"shared worker process not responding: {exc}") from None

    def _start(self) -> None:
        self._stop_locked()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = _spawn(["--shared", str(child.fileno())], [child.fileno()])
        except DataPlaneError:
            parent.close()
            raise
        finally:
            child.close()
        self._master = parent

    def close(self) -> None:
        """End the worker; bridges still attached lose their control socket's peer and report it."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        master, proc = self._master, self._proc
        self._master, self._proc = None, None
        _end_worker(master, proc)  # the worker exits once it has no master and no bridge left


def _end_worker(ctl: socket.socket | None, proc: subprocess.Popen | None) -> None:
    """Close our end of a worker's control socket (its cue to exit), then reap it; killed if it takes too long."""
    if ctl is not None:
        ctl.close()
    if proc is not None:
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spawn(args: list[str], pass_fds: list[int]) -> subprocess.Popen:
    """Start ``python -m gns3core.dataplane ARGS`` with those descriptors inherited."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    try:
        return subprocess.Popen([sys.executable, "-m", "gns3core.dataplane", *args], pass_fds=pass_fds,
                                stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        raise DataPlaneError(str(exc)) from None


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


def serve(ctl: socket.socket, fd_map: dict[int, int] | None = None, poller: Poller | None = None) -> None:
    """Worker side: build the bridge from the hello message, then answer requests until told to stop.

    In a shared worker, `fd_map` renumbers the descriptors the hello names (the server's numbers) to ours (whatever
    the bridge does not take over is closed), and `poller` forwards the bridge."""
    hello = json.loads(ctl.recv(_MESSAGE_MAX) or b"null")
    if not hello:
        _close_unused(fd_map, list(fd_map.values()) if fd_map else [])
        return
    if fd_map is not None:
        for spec in hello["ends"]:
            spec["fds"] = [fd_map[fd] for fd in spec["fds"]]
    adopted: list[Endpoint] = []
    try:
        for spec in hello["ends"]:
            adopted.append(_adopt_endpoint(spec))
        if poller is not None:
            bridge: Bridge = PolledBridge(hello["name"], *adopted, poller=poller)
        else:
            bridge = Bridge(hello["name"], *adopted)
        bridge.set_impairments(Impairments(**hello["impairments"]))
        capture = hello["capture"]
        if capture:
            bridge._open_capture(capture["path"], capture["dlt"], capture["append"])
        bridge._start_threads()
    except (DataPlaneError, KeyError, TypeError) as exc:
        for endpoint in adopted:
            endpoint.close()
        _close_unused(fd_map, [fd for spec in hello["ends"][len(adopted):] for fd in spec.get("fds", [])])
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


def _close_unused(fd_map: dict[int, int] | None, fds: list[int]) -> None:
    """In a shared worker: close descriptors received for a bridge that never took them over."""
    if fd_map is None:
        return
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def serve_shared(master: socket.socket) -> None:
    """Shared worker side: each message on `master` brings one bridge (its control socket first, then its endpoint
    descriptors), whose requests a thread of its own answers while one poller forwards every bridge's frames;
    returns when the server closes `master` and no bridge is left."""
    threads: list[threading.Thread] = []
    poller = Poller()
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(master, _MESSAGE_MAX, 256)
        except OSError:
            break
        if not data:
            for fd in fds:
                os.close(fd)
            break
        message = json.loads(data)
        ctl = socket.socket(fileno=fds[0])
        fd_map = dict(zip(message["fds"], fds[1:], strict=True))
        thread = threading.Thread(target=_serve_and_close, args=(ctl, fd_map, poller),
                                  name=f"bridge-{message['name']}", daemon=True)
        thread.start()
        threads = [t for t in threads if t.is_alive()] + [thread]
    for thread in threads:
        thread.join()
    poller.close()


def _serve_and_close(ctl: socket.socket, fd_map: dict[int, int], poller: Poller) -> None:
    try:
        serve(ctl, fd_map, poller)
    finally:
        ctl.close()


def main() -> None:
    """Entry point of ``python -m gns3core.dataplane CONTROL_FD`` (one bridge) or ``--shared MASTER_FD``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which then stops us
    logging.basicConfig(level=logging.WARNING, format="dataplane worker %(process)d: %(message)s")
    if sys.argv[1] == "--shared":
        master = socket.socket(fileno=int(sys.argv[2]))
        try:
            serve_shared(master)
        finally:
            master.close()
        return
    ctl = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(ctl)
    finally:
        ctl.close()
