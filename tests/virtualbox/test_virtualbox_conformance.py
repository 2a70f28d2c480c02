"""The core's conformance kit, run against the VirtualBox plugin and the VBoxManage stand-in."""

from __future__ import annotations

import pytest
from conftest import BASE_VM

from gns3core.testing.conformance import EmulatorConformance

pytestmark = pytest.mark.timeout(180)


class TestVirtualBoxConformance(EmulatorConformance):
    emulator = "virtualbox"
    create_body = {"name": "conformance", "vmname": BASE_VM, "linked_clone": False, "adapters": 1}
    update_body = {"name": "renamed", "headless": True, "ram": 512}
