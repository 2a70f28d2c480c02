"""Tests of the core run against the example plugin only, so they pass with no emulator installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "example_plugin"))

import gns3_example  # noqa: E402


@pytest.fixture
def gns3_plugins():
    return [gns3_example]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False
