"""Test support shipped with the core: fixtures (a pytest plugin) and the conformance kit for emulator plugins."""

from __future__ import annotations

import os


def require(condition: bool, reason: str) -> None:
    """Skip a test that needs something missing here, but fail under CI (`CI` set), where it must be installed."""
    if condition:
        return
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def is_ping(message: dict) -> bool:
    """A notification keep-alive as released GNS3 1.5.x sends it: `action` ping and the host load in `event`, both
    figures present (the 1.5.4 client reads both without a fallback). The seed's ping had `action` only; the
    release wins there (api-1.5-release §15 #3)."""
    event = message.get("event")
    return (message.get("action") == "ping" and set(message) == {"action", "event"} and isinstance(event, dict)
            and set(event) == {"cpu_usage_percent", "memory_usage_percent"}
            and all(isinstance(v, (int, float)) and 0 <= v <= 100 for v in event.values()))
