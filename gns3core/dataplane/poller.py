"""One thread that forwards for many bridges at once, waiting on all their endpoints together (epoll).

Thread bridges give every direction a blocking thread of its own. That is the cheapest design for a few busy links,
but with a hundred links in one process, each frame must win the GIL from the others, and on a machine whose cores
are taken (a hundred busy-looping vpcs) a thread preempted while it holds the GIL stalls every link behind it: frames
then arrive after the emulators' timeouts. A poller has no GIL hand-over at all: one thread reads whatever is ready,
forwards it and waits again. The shared worker process (worker.py) runs its bridges this way.

Bridges whose endpoints cannot be polled (``Endpoint.selectable`` is None) keep their own threads.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading

from .bridge import _FRAME_BUFFER, Bridge, _RunFlag
from .endpoints import Endpoint

log = logging.getLogger(__name__)

_BURST = 64  # frames read from one endpoint before the others get a turn
_ROUND_TIMEOUT = 5.0


class Poller:
    """The forwarding thread; bridges add and remove their two reading sides (started lazily, ends on close)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._round = 0
        self._rounds = threading.Condition(self._lock)
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="dataplane-poller", daemon=True)
        self._thread.start()

    def add(self, bridge: PolledBridge, index: int, fd: int, run: _RunFlag) -> None:
        """Forward what arrives on `fd` (side `index` of `bridge`) while `run.on`."""
        with self._lock:
            self._selector.register(fd, selectors.EVENT_READ, (bridge, index, run))

    def remove(self, fds: list[int]) -> None:
        """Stop reading these descriptors; returns once the poller thread no longer touches them, so the caller
        may close or swap the endpoints."""
        with self._lock:
            for fd in fds:
                try:
                    self._selector.unregister(fd)
                except (KeyError, ValueError):
                    pass
            if threading.current_thread() is self._thread:
                return
            # The round in progress may still use keys it selected before; the next one starts after it is done.
            target = self._round + 1
            self._wake()
            self._rounds.wait_for(lambda: self._round >= target or self._closing, _ROUND_TIMEOUT)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake()
            self._rounds.notify_all()
        self._thread.join(_ROUND_TIMEOUT)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:
            pass  # already pending

    def _run(self) -> None:
        buf = bytearray(_FRAME_BUFFER)
        view = memoryview(buf)
        while True:
            with self._lock:
                self._round += 1
                self._rounds.notify_all()
                if self._closing:
                    return
            try:
                events = self._selector.select()
            except (OSError, ValueError):  # closed under us
                return
            flushed: set[PolledBridge] = set()
            for key, _mask in events:
                if key.data is None:
                    try:
                        os.read(self._wake_read, 4096)
                    except BlockingIOError:
                        pass
                    continue
                bridge, index, run = key.data
                if not run.on:
                    continue
                try:
                    bridge._drain(index, buf, view)
                except Exception:  # noqa: BLE001 - one bridge's fault must not stop every other bridge's frames
                    log.exception("bridge %s: error while forwarding", bridge.name)
                if bridge._capture is not None:
                    flushed.add(bridge)
            for bridge in flushed:
                capture = bridge._capture
                if capture is not None:
                    capture.flush()  # the burst is over: live readers of the pcap see it


class PolledBridge(Bridge):
    """A Bridge forwarded by a Poller instead of two threads of its own (same public API)."""

    def __init__(self, name: str, a: Endpoint, b: Endpoint, *, poller: Poller) -> None:
        super().__init__(name, a, b)
        self._poller = poller
        self._polled: list[int] = []

    def _start_threads(self) -> None:
        fds = [endpoint.selectable() for endpoint in self._ends]
        if None in fds:
            super()._start_threads()
            return
        run = _RunFlag()
        self._run = run
        self._polled = [fd for fd in fds if fd is not None]
        for index, fd in enumerate(self._polled):
            self._poller.add(self, index, fd, run)

    def _stop_threads(self, final: bool = False) -> None:
        if not self._polled:
            super()._stop_threads(final)
            return
        if self._run is not None:
            self._run.on = False
        polled, self._polled = self._polled, []
        self._poller.remove(polled)
        self._run = None

    def _drain(self, index: int, buf: bytearray, view: memoryview) -> None:
        """Forward up to a burst of the frames waiting on side `index` (poller thread)."""
        source, target = self._ends[index], self._ends[1 - index]
        counters = self._counters[index]
        receive, send = source.try_recv_into, target.send
        for _ in range(_BURST):
            try:
                size = receive(buf)
            except BlockingIOError:
                return
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                # e.g. ECONNREFUSED, reported once after an ICMP port unreachable: the next read is fine again
                log.debug("bridge %s: receive error on side %s (%r): %s", self.name, "ab"[index], source, exc)
                return
            if size > 0:
                self._pass(index, counters, view[:size], send, target)
