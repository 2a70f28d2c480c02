"""Fixtures of the core's tests (the example plugin itself is registered by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gns3core.config import Config


@pytest.fixture
def projects_dir(gns3_config: Config) -> Path:
    return Path(gns3_config.server.get("projects_path"))
