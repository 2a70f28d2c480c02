"""Bridges that join two endpoints, and the DataPlane that owns them.

Each bridge forwards with one blocking relay thread per direction: a thread sleeps in the kernel until a frame
arrives, so idle bridges cost no CPU, and a slow or stuck bridge only stalls its own threads. The relay loop is
kept as short as possible because it runs once per frame under the GIL; capture and impairments are looked up
per frame so they can be switched on and off at any time without restarting anything.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from .capture import PcapWriter
from .endpoints import Endpoint
from .errors import DataPlaneError
from .impairments import Impairments

log = logging.getLogger(__name__)

_SIDES = {"a": 0, "b": 1}
_DIRECTION_NAMES = ("a_to_b", "b_to_a")
_JOIN_TIMEOUT = 5.0
_MAX_DELAYED_FRAMES = 50_000
_FRAME_BUFFER = 65536 + 16


class _Counters:
    """Per-direction counters, bumped by exactly one relay thread (plus the delay line for delayed frames)."""

    __slots__ = ("frames", "bytes", "dropped", "errors")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.dropped = 0
        self.errors = 0


class _RunFlag:
    """Shared stop flag of one generation of relay threads (a new object per restart, so old threads stay stopped)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


class _Impairer:
    """Applies an :class:`Impairments` to frames; one instance per setting so counters restart when it changes."""

    def __init__(self, settings: Impairments, bridge: Bridge) -> None:
        self.settings = settings
        self.loss = settings.loss_percent / 100.0
        self.corrupt = settings.corrupt_percent / 100.0
        self.every = settings.drop_every
        self.delay = settings.delay_ms / 1000.0
        self.jitter = settings.jitter_ms / 1000.0
        self.seen = [0, 0]
        self.rng = random.Random()
        self.bridge = bridge

    def process(self, index: int, frame: memoryview) -> memoryview | bytes | bytearray | None:
        """Return the frame to forward now, or None when it was dropped or queued for later."""
        counters = self.bridge._counters[index]
        if self.every:
            seen = self.seen[index] + 1
            self.seen[index] = seen
            if seen % self.every == 0:
                counters.dropped += 1
                return None
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            counters.dropped += 1
            return None
        if self.corrupt and rng.random() < self.corrupt and len(frame):
            frame = bytearray(frame)
            # Past the Ethernet header when possible, so the frame still reaches its destination, damaged.
            start = 14 if len(frame) > 14 else 0
            frame[rng.randrange(start, len(frame))] ^= 0xFF
        if self.delay or self.jitter:
            wait = self.delay + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
            if not self.bridge._delay_line().push(time.monotonic() + max(wait, 0.0), index, bytes(frame)):
                counters.dropped += 1
            return None
        return frame


class _DelayLine:
    """Holds delayed frames in a heap and sends each when due, from its own thread (started on first use)."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self._heap: list[tuple[float, int, int, bytes]] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"dataplane-{bridge.name}-delay", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, index: int, frame: bytes) -> bool:
        with self._cond:
            if self._stopping or len(self._heap) >= _MAX_DELAYED_FRAMES:
                return False
            self._seq += 1
            item = (due, self._seq, index, frame)
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._cond.notify()
        return True

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                while not self._stopping:
                    if not heap:
                        self._cond.wait()
                        continue
                    wait = heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                now = time.monotonic()
                due = []
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap))
            for _due, _seq, index, frame in due:
                self._bridge._deliver(index, frame)
            capture = self._bridge._capture
            if capture is not None:
                capture.flush()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(_JOIN_TIMEOUT)


class Bridge:
    """Forwards frames between endpoint ``a`` and endpoint ``b`` in both directions; created by DataPlane."""

    def __init__(self, name: str, a: Endpoint, b: Endpoint) -> None:
        self.name = name
        self._ends: list[Endpoint] = [a, b]
        self._counters = [_Counters(), _Counters()]
        self._capture: PcapWriter | None = None
        self._impairer: _Impairer | None = None
        self._impairments = Impairments()
        self._threads: list[threading.Thread] = []
        self._run: _RunFlag | None = None
        self._delay: _DelayLine | None = None
        self._control = threading.Lock()  # serialises open/swap/close
        self._swap = threading.Lock()  # held while an endpoint is replaced, so delayed frames never hit a closed one
        self._closed = False

    # -- public API ---------------------------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        """The two endpoints (a, b) currently joined."""
        return self._ends[0], self._ends[1]

    @property
    def closed(self) -> bool:
        """True once the bridge was closed (it cannot be reopened)."""
        return self._closed

    @property
    def capturing(self) -> bool:
        """True while a pcap capture is being written."""
        return self._capture is not None

    @property
    def capture_file(self) -> str | None:
        """Absolute path of the current capture file, or None."""
        capture = self._capture
        return capture.path if capture is not None else None

    def start_capture(self, path: str, data_link_type: str | int = "DLT_EN10MB") -> None:
        """Capture both directions to a classic pcap file (created or truncated; its directory is created).

        Calling it while already capturing switches to the new file. Frames are recorded as forwarded (after
        loss/corruption, at the moment a delayed frame leaves).
        """
        if self._closed:
            raise DataPlaneError(f"Bridge {self.name} is closed")
        self._open_capture(path, data_link_type)

    def _open_capture(self, path: str, data_link_type: str | int, append: bool = False) -> None:
        writer = PcapWriter(path, data_link_type, append=append)
        old, self._capture = self._capture, writer
        if old is not None:
            old.close()
        log.info("bridge %s: capturing to %s", self.name, writer.path)

    def stop_capture(self) -> None:
        """Stop capturing and close the file (no error if no capture runs)."""
        old, self._capture = self._capture, None
        if old is not None:
            old.close()
            log.info("bridge %s: capture to %s stopped (%d frames)", self.name, old.path, old.frames)

    @property
    def impairments(self) -> Impairments:
        """The impairments in force."""
        return self._impairments

    def set_impairments(self, impairments: Impairments | None = None, **values: Any) -> None:
        """Change loss/delay/jitter/corruption/drop-every at once, for both directions; takes effect immediately.

        Pass an :class:`Impairments` or its fields as keywords; ``Impairments()`` (all zero) clears them.
        """
        if impairments is None:
            impairments = Impairments(**values)
        elif values:
            raise DataPlaneError("Pass either an Impairments object or keyword values, not both")
        if not isinstance(impairments, Impairments):
            raise DataPlaneError(f"Expected Impairments, got {type(impairments).__name__}")
        self._impairments = impairments
        self._impairer = _Impairer(impairments, self) if impairments.active else None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: frames/bytes received on each side, frames dropped by impairments, send errors."""
        result: dict[str, int] = {}
        for name, counters in zip(_DIRECTION_NAMES, self._counters, strict=True):
            result[f"frames_{name}"] = counters.frames
            result[f"bytes_{name}"] = counters.bytes
            result[f"dropped_{name}"] = counters.dropped
            result[f"errors_{name}"] = counters.errors
        result["dropped"] = self._counters[0].dropped + self._counters[1].dropped
        result["errors"] = self._counters[0].errors + self._counters[1].errors
        result["delayed"] = len(self._delay) if self._delay is not None else 0
        capture = self._capture
        result["captured"] = capture.frames if capture is not None else 0
        return result

    async def update_endpoint(self, side: str, endpoint: Endpoint) -> None:
        """Replace side ``"a"`` or ``"b"`` (e.g. the NIO's destination changed); the other side stays open and
        frames it receives meanwhile wait in its socket. On failure the bridge keeps the old endpoint."""
        if side not in _SIDES:
            raise DataPlaneError(f"Bridge side must be 'a' or 'b', got {side!r}")
        if not isinstance(endpoint, Endpoint):
            raise DataPlaneError(f"Expected an Endpoint, got {type(endpoint).__name__}")
        await _offload(self._replace, _SIDES[side], endpoint)

    async def close(self) -> None:
        """Stop forwarding, stop capture, close both endpoints and remove what they created."""
        await _offload(self._close)

    def __repr__(self) -> str:
        return f"Bridge({self.name!r}, {self._ends[0]!r}, {self._ends[1]!r})"

    # -- lifecycle (run off the event loop) ---------------------------------------------------------------------

    def _open(self) -> None:
        with self._control:
            a, b = self._ends
            if a is b:
                raise DataPlaneError(f"Bridge {self.name}: both sides are the same endpoint")
            a.open()
            try:
                b.open()
            except BaseException:
                a.close()
                raise
            try:
                self._start_threads()
            except BaseException:
                a.close()
                b.close()
                raise

    def _replace(self, index: int, new: Endpoint) -> None:
        with self._control:
            if self._closed:
                raise DataPlaneError(f"Bridge {self.name} is closed")
            if new in self._ends:
                raise DataPlaneError(f"Bridge {self.name}: that endpoint is already in use")
            self._stop_threads()
            try:
                with self._swap:
                    old = self._ends[index]
                    if not new.take_over(old):
                        new.open()  # raises before anything changed; the old endpoint is still in place
                        old.close()
                    self._ends[index] = new
            finally:
                self._start_threads()
            log.info("bridge %s: side %s is now %r", self.name, "ab"[index], new)

    def _close(self) -> None:
        with self._control:
            if self._closed:
                return
            self._closed = True
            self._stop_threads(final=True)
            if self._delay is not None:
                self._delay.stop()
            self.stop_capture()
            for endpoint in self._ends:
                try:
                    endpoint.close()
                except Exception:  # noqa: BLE001 - closing must go on for the other side
                    log.exception("bridge %s: error while closing %r", self.name, endpoint)

    def _start_threads(self) -> None:
        run = _RunFlag()
        self._run = run
        self._threads = [
            threading.Thread(target=self._relay, args=(index, run), daemon=True,
                             name=f"dataplane-{self.name}-{_DIRECTION_NAMES[index]}")
            for index in (0, 1)
        ]
        for thread in self._threads:
            thread.start()

    def _stop_threads(self, final: bool = False) -> None:
        run, threads = self._run, self._threads
        if run is None:
            return
        run.on = False
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for index, thread in enumerate(threads):
            endpoint = self._ends[index]
            while thread.is_alive():
                if final:
                    endpoint.shutdown()
                else:
                    endpoint.interrupt()
                thread.join(0.05)
                if time.monotonic() > deadline:
                    log.error("bridge %s: relay thread %s did not stop", self.name, thread.name)
                    break
        self._run, self._threads = None, []

    def _delay_line(self) -> _DelayLine:
        delay = self._delay
        if delay is None:
            with self._swap:
                if self._delay is None:
                    self._delay = _DelayLine(self)
                delay = self._delay
        return delay

    def _deliver(self, index: int, frame: bytes) -> None:
        """Send a delayed frame out of the side opposite ``index`` (from the delay line's thread)."""
        with self._swap:
            capture = self._capture
            if capture is not None:
                capture.write(frame)
            try:
                self._ends[1 - index].send(frame)
            except (OSError, AttributeError, TypeError):
                self._counters[index].errors += 1

    # -- the per-frame loop -------------------------------------------------------------------------------------

    def _relay(self, index: int, run: _RunFlag) -> None:
        source, target = self._ends[index], self._ends[1 - index]
        counters = self._counters[index]
        buf = bytearray(_FRAME_BUFFER)
        view = memoryview(buf)
        recv = source.recv_into
        try_recv = source.try_recv_into
        send = target.send
        failures = 0
        while run.on:
            try:
                if self._capture is None:
                    size = recv(buf)
                else:
                    try:
                        size = try_recv(buf)
                    except BlockingIOError:
                        capture = self._capture
                        if capture is not None:
                            capture.flush()  # the link went idle: let live readers see everything so far
                        size = recv(buf)
                failures = 0
            except BlockingIOError:
                continue
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                if not run.on:
                    break
                failures += 1
                if failures == 1:
                    log.warning("bridge %s: receive error on side %s (%r): %s", self.name, "ab"[index], source, exc)
                # A broken endpoint (e.g. its interface was deleted) must not spin a core: back off, up to 1 s.
                time.sleep(min(0.001 * 2 ** min(failures, 10), 1.0))
                continue
            if size > 0:
                self._pass(index, counters, view[:size], send, target)

    def _pass(self, index: int, counters: _Counters, frame: memoryview, send: Callable[[Any], None],
              target: Endpoint) -> None:
        """One received frame: count, impair, capture, send to the other side (relay threads and the poller)."""
        counters.frames += 1
        counters.bytes += len(frame)
        impairer = self._impairer
        if impairer is not None:
            frame = impairer.process(index, frame)
            if frame is None:
                return
        capture = self._capture
        if capture is not None:
            capture.write(frame)
        try:
            send(frame)
        except OSError as exc:
            counters.errors += 1
            if counters.errors == 1:
                log.warning("bridge %s: send error on side %s (%r): %s", self.name, "ba"[index], target, exc)


class DataPlane:
    """Owns every bridge of a server; one instance per server."""

    def __init__(self, process_bridges: bool | Literal["shared"] = False) -> None:
        """``process_bridges``: the default of create_bridge's ``process`` (True: a worker process per bridge,
        "shared": the shared worker; see worker.py)."""
        self.process_bridges = process_bridges
        self._shared_worker: Any = None  # worker.SharedWorker, started with the first shared bridge
        self._bridges: dict[str, Bridge] = {}
        self._pending: set[str] = set()
        self._cleanups: set[asyncio.Future] = set()
        self._closed = False

    @property
    def bridges(self) -> dict[str, Bridge]:
        """A snapshot of the running bridges by name."""
        return dict(self._bridges)

    def get_bridge(self, name: str) -> Bridge:
        """The bridge of that name; DataPlaneError if there is none."""
        try:
            return self._bridges[name]
        except KeyError:
            raise DataPlaneError(f"Bridge {name} does not exist") from None

    async def create_bridge(self, name: str, a: Endpoint, b: Endpoint, *,
                            process: bool | Literal["shared"] | None = None) -> Bridge:
        """Open both endpoints and start forwarding between them; DataPlaneError if the host refuses.

        ``process=True`` forwards in a worker process: worth it for a busy link, since all thread bridges of one
        server share one core (GIL); it costs a Python process (~10 MB) per bridge. ``process="shared"`` forwards in
        one worker process shared by all such bridges: for many light links whose frames must not wait for the
        server's event loop when the machine is loaded. Default: ``process_bridges``.
        """
        if self._closed:
            raise DataPlaneError("The data plane is closed")
        if not isinstance(a, Endpoint) or not isinstance(b, Endpoint):
            raise DataPlaneError("A bridge joins two Endpoint objects")
        if name in self._bridges or name in self._pending:
            raise DataPlaneError(f"Bridge {name} already exists")
        self._pending.add(name)
        mode = process if process is not None else self.process_bridges
        if mode == "shared":
            from .worker import ProcessBridge, SharedWorker  # imported late: worker.py builds on this module

            if self._shared_worker is None:
                self._shared_worker = SharedWorker()
            bridge: Bridge = ProcessBridge(name, a, b, shared=self._shared_worker)
        elif mode:
            from .worker import ProcessBridge

            bridge = ProcessBridge(name, a, b)
        else:
            bridge = Bridge(name, a, b)
        opening = asyncio.ensure_future(_offload(bridge._open))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The caller gave up while the host was still being set up: undo it once setup finishes.
            task = asyncio.ensure_future(_close_when_open(opening, bridge))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
            raise
        finally:
            self._pending.discard(name)
        if self._closed:
            await bridge.close()
            raise DataPlaneError("The data plane is closed")
        self._bridges[name] = bridge
        log.info("bridge %s created: %r <-> %r", name, a, b)
        return bridge

    async def remove_bridge(self, name: str) -> None:
        """Close a bridge and forget it."""
        bridge = self._bridges.pop(name, None)
        if bridge is None:
            raise DataPlaneError(f"Bridge {name} does not exist")
        await bridge.close()

    async def close(self) -> None:
        """Close every bridge (in parallel); nothing of the data plane keeps running afterwards."""
        self._closed = True
        bridges = list(self._bridges.values())
        self._bridges.clear()
        results = await asyncio.gather(*(bridge.close() for bridge in bridges), *self._cleanups,
                                       return_exceptions=True)
        for bridge, result in zip(bridges, results[:len(bridges)], strict=True):
            if isinstance(result, BaseException):
                log.error("bridge %s: error while closing: %s", bridge.name, result)
        if self._shared_worker is not None:
            await _offload(self._shared_worker.close)


async def _close_when_open(opening: asyncio.Future, bridge: Bridge) -> None:
    """Close a bridge whose creation was cancelled, once its setup thread is done."""
    try:
        await opening
    except BaseException:  # noqa: BLE001 - setup failed: it already released what it had opened
        return
    await bridge.close()


async def _offload(func: Callable[..., Any], *args: Any) -> Any:
    """Run blocking setup/teardown in a short-lived thread so the event loop stays responsive, and leave no
    executor threads behind afterwards."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    thread = threading.Thread(target=target, name="dataplane-control", daemon=True)
    thread.start()
    result = await future
    thread.join()
    return result
