"""Per-project notification stream: every event is copied to every listener without letting one slow it down."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

log = logging.getLogger(__name__)

PING = {"action": "ping"}


def encode_event(message: dict[str, Any]) -> bytes:
    """One compact JSON object per line, keys sorted, as the GNS3 client reads it."""
    return (json.dumps(message, sort_keys=True) + "\n").encode("utf-8")


class Listener:
    """One connected client. Its queue is bounded: a client that stops reading is cut off, never waited for."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def offer(self, line: bytes) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            log.warning("A notification listener fell %d events behind; disconnecting it", self.queue.maxsize)
            self.end()

    def end(self) -> None:
        """Queue the end-of-stream marker, dropping what is unread if there is no room left."""
        if self.overflowed:
            return
        self.overflowed = True
        if self.queue.full():
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put_nowait(None)


class NotificationHub:
    """The listeners of one project."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.listeners: set[Listener] = set()

    def listen(self) -> Listener:
        listener = Listener(self.queue_size)
        self.listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def emit(self, action: str, event: Any) -> None:
        if not self.listeners:
            return
        line = encode_event({"action": action, "event": event})
        for listener in list(self.listeners):
            listener.offer(line)
            if listener.overflowed:  # cut off: it must not count as a listener any more (project close)
                self.listeners.discard(listener)

    def close(self) -> None:
        """End every stream (project closed or server stopping)."""
        for listener in list(self.listeners):
            listener.end()
        self.listeners.clear()
