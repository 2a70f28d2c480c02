"""The host load carried by the notification ping (released GNS3 1.5.x): CPU between samples, memory, shared."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import psutil

from gns3core.hostload import HostLoad, cpu_busy_and_total, cpu_percent_between


def test_cpu_percent_between_samples() -> None:
    assert cpu_percent_between(None, (5.0, 10.0)) == 0.0  # the first sample has nothing to compare with
    assert cpu_percent_between((5.0, 10.0), (8.0, 14.0)) == 75.0
    assert cpu_percent_between((5.0, 10.0), (5.0, 10.0)) == 0.0  # no time passed
    busy, total = cpu_busy_and_total(psutil.cpu_times())
    assert 0 < busy < total


async def test_first_sample_is_zero_then_real_figures() -> None:
    load = HostLoad(min_interval=0.0)
    first = await load.current()
    assert first["cpu_usage_percent"] == 0.0
    assert abs(first["memory_usage_percent"] - psutil.virtual_memory().percent) < 5  # memory moves a little
    busy_loop = "import time\nend = time.time() + 0.5\nwhile time.time() < end: pass"
    burner = subprocess.Popen([sys.executable, "-c", busy_loop])
    try:
        await asyncio.to_thread(burner.wait, 10)
    finally:
        burner.kill()
    second = await load.current()
    assert 0.0 < second["cpu_usage_percent"] <= 100.0


async def test_listeners_share_one_sample(monkeypatch) -> None:
    load = HostLoad(min_interval=60.0)
    calls = []
    real = load._measure

    def counted() -> dict[str, float]:
        calls.append(time.monotonic())
        return real()

    monkeypatch.setattr(load, "_measure", counted)
    samples = await asyncio.gather(*(load.current() for _ in range(50)))
    assert len(calls) == 1 and all(s == samples[0] for s in samples)
    await load.current()
    assert len(calls) == 1  # still fresh
