"""Host CPU and memory load, as the notification ping carries it (the GNS3 1.5.4 client shows both and lights a
yellow LED at 90 %)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import psutil

log = logging.getLogger(__name__)


def cpu_busy_and_total(times: Any) -> tuple[float, float]:
    """CPU seconds spent busy and in total since boot; idle and I/O wait count as not busy."""
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def cpu_percent_between(previous: tuple[float, float] | None, current: tuple[float, float]) -> float:
    """Busy share of the CPU time between two samples, in %; 0.0 without a previous sample (as GNS3 1.5.4)."""
    if previous is None:
        return 0.0
    busy = current[0] - previous[0]
    total = current[1] - previous[1]
    if total <= 0:
        return 0.0
    return round(min(100.0, max(0.0, 100.0 * busy / total)), 1)


class HostLoad:
    """The last sample, shared by every listener and taken at most once per `min_interval` in a worker thread.

    Reading /proc is quick, but a ping goes to every listener of every project every 5 s: the loop never waits on
    the file system for it, and a hundred listeners cost one sample.
    """

    def __init__(self, min_interval: float = 1.0) -> None:
        self.min_interval = min_interval
        self._cpu: tuple[float, float] | None = None
        self._sample = {"cpu_usage_percent": 0.0, "memory_usage_percent": 0.0}
        self._taken_at = -math.inf
        self._pending: asyncio.Task[None] | None = None

    async def current(self) -> dict[str, float]:
        """`{"cpu_usage_percent": x, "memory_usage_percent": y}`, refreshed when the last sample is too old."""
        if time.monotonic() - self._taken_at >= self.min_interval:
            if self._pending is None:
                self._pending = asyncio.get_running_loop().create_task(self._refresh())
            await asyncio.shield(self._pending)
        return dict(self._sample)

    async def _refresh(self) -> None:
        try:
            self._sample = await asyncio.to_thread(self._measure)
        except Exception as exc:  # a host that hides /proc: keep the previous figures rather than break the stream
            log.debug("Could not sample the host load: %s", exc)
        finally:
            self._taken_at = time.monotonic()
            self._pending = None

    def _measure(self) -> dict[str, float]:
        cpu = cpu_busy_and_total(psutil.cpu_times())
        percent = cpu_percent_between(self._cpu, cpu)
        self._cpu = cpu
        return {"cpu_usage_percent": percent, "memory_usage_percent": round(psutil.virtual_memory().percent, 1)}
