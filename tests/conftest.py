"""Tests of the core run against the example plugin only, so they pass with no emulator installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "example_plugin"))

import gns3_example  # noqa: E402

from gns3core.testing.client import ApiClient  # noqa: E402

pytest_plugins = ["gns3core.testing.fixtures"]


@pytest.fixture
def gns3_plugins():
    return [gns3_example]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


# Short names for this repository's own tests; the kit's fixtures are prefixed so they never collide elsewhere.


@pytest.fixture
def api(gns3_api: ApiClient) -> ApiClient:
    return gns3_api


@pytest.fixture
def project(gns3_project: dict) -> dict:
    return gns3_project
