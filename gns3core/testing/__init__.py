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
