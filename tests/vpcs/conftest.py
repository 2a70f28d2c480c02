"""Fixtures of the VPCS plugin tests: the plugin in-process, the real vpcs, and helpers shared by the test modules.

A missing vpcs skips the tests that need it (with the package to install), except under CI (`CI` set) where it
fails: CI installs the Debian package `vpcs`.

`vpcs_backend` is the `[VPCS] backend` the in-process server runs with (`vpcs` unless a module parametrizes it with
`BOTH_BACKENDS`, as the API, session and conformance tests do).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import gns3_vpcs.plugin
import pytest
from gns3_vpcs import program

sys.path.insert(0, str(Path(__file__).parent))

from vpcs_helpers import CONSOLE_RANGE, UDP_RANGE  # noqa: E402

from gns3core.testing import require  # noqa: E402


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_vpcs.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


# Ports of their own: other test sessions on this machine start servers at the default 2001 / 10000 too, and a port
# probed free by one server can be taken by another before vpcs binds it.


@pytest.fixture
def vpcs_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "vpcs")


@pytest.fixture
def gns3_config_overrides(vpcs_backend: str) -> dict[str, dict[str, str]]:
    return {"Server": {"console_start_port_range": CONSOLE_RANGE[0], "console_end_port_range": CONSOLE_RANGE[1],
                       "udp_start_port_range": UDP_RANGE[0], "udp_end_port_range": UDP_RANGE[1]},
            "VPCS": {"backend": vpcs_backend}}


@pytest.fixture
def vpcs_binary() -> str:
    path = shutil.which("vpcs")
    require(path is not None, "vpcs is not installed (apt-get install vpcs)")
    return str(path)


@pytest.fixture(autouse=True)
def _fresh_version_cache():
    """Each test asks its binaries afresh, so a fake binary of one test never answers for another."""
    program.forget_versions()
    yield
    program.forget_versions()
