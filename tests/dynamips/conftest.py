"""Tests of the Dynamips plugin: the plugin is registered in-process, installed entry points are ignored."""

from __future__ import annotations

import gns3_dynamips.plugin
import pytest
from lab import require_program


@pytest.fixture
def gns3_plugins():
    return [gns3_dynamips.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


@pytest.fixture
def dynamips_path() -> str:
    return require_program("dynamips")


@pytest.fixture
def vpcs_path() -> str:
    return require_program("vpcs")
