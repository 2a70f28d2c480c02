"""Multi-host tests: the VPCS, Qemu and Dynamips plugins in-process (installed entry points are ignored)."""

from __future__ import annotations

from typing import Any

import gns3_dynamips.plugin
import gns3_qemu.plugin
import gns3_vpcs.plugin
import pytest


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_vpcs.plugin, gns3_qemu.plugin, gns3_dynamips.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False
