"""pytest fixtures for testing the server and emulator plugins in-process.

A test suite opts in with `pytest_plugins = ["gns3core.testing.fixtures"]` in its top-level conftest.py; nothing is
pushed into other projects' test runs. Every fixture name starts with `gns3_`. Override `gns3_plugins` to register
plugin objects directly, `gns3_use_entry_points` to ignore installed plugins, and `gns3_config_overrides` to set
configuration keys (`{"Server": {"local": "true"}}`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

try:
    import pytest_asyncio
except ImportError as exc:  # the core without its test extra: say what to install instead of a bare ImportError
    raise ImportError("gns3core.testing.fixtures needs the core's test extra (pytest-asyncio, pytest-aiohttp): "
                      "pip install 'gns3core[test]'") from exc

from gns3core.app import SERVER_KEY, create_app
from gns3core.config import Config
from gns3core.server import Server
from gns3core.testing.client import ApiClient


@pytest.fixture
def gns3_plugins() -> list[Any]:
    """Plugin objects (modules or instances with hook implementations) to register in-process."""
    return []


@pytest.fixture
def gns3_use_entry_points() -> bool:
    """Whether installed plugins (entry points) are loaded too."""
    return True


@pytest.fixture
def gns3_config_overrides() -> dict[str, dict[str, str]]:
    return {}


@pytest.fixture
def gns3_config(tmp_path: Path, gns3_config_overrides: dict[str, dict[str, str]]) -> Config:
    """A configuration of its own: projects and images in the test's temporary directory."""
    server = {
        "host": "127.0.0.1",
        "projects_path": str(tmp_path / "projects"),
        "images_path": str(tmp_path / "images"),
    }
    overrides: dict[str, dict[str, str]] = {"Server": server}
    for section, values in gns3_config_overrides.items():
        overrides.setdefault(section, {}).update(values)
    return Config(files=[], overrides=overrides)


@pytest.fixture
def gns3_app(gns3_config: Config, gns3_plugins: list[Any], gns3_use_entry_points: bool):
    return create_app(gns3_config, extra_plugins=gns3_plugins, use_entry_points=gns3_use_entry_points,
                      validate_output=True)


@pytest_asyncio.fixture
async def gns3_api(gns3_app, aiohttp_client) -> ApiClient:
    """An API client on an in-process server; every response is checked against its output schema server-side."""
    client = await aiohttp_client(gns3_app)
    return ApiClient(client)


@pytest.fixture
def gns3_server(gns3_app) -> Server:
    return gns3_app[SERVER_KEY]


@pytest_asyncio.fixture
async def gns3_project(gns3_api: ApiClient) -> AsyncIterator[dict[str, Any]]:
    """A fresh project (deleted afterwards if still open)."""
    reply = await gns3_api.post("/v1/projects", {"name": "test"})
    assert reply.status == 201, reply
    yield reply.json
    await gns3_api.delete(f"/v1/projects/{reply.json['project_id']}")
