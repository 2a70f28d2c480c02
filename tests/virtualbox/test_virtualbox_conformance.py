"""The core's conformance kit, run against the VirtualBox plugin and the VBoxManage stand-in."""

from __future__ import annotations

import pytest
from vbox_lab import BASE_VM

from gns3core.testing.conformance import ConsoleSection, EmulatorConformance, LinkChangeSection, StartStopSection

pytestmark = pytest.mark.timeout(240)


class TestVirtualBoxConformance(EmulatorConformance, StartStopSection, ConsoleSection, LinkChangeSection):
    """Every section but CaptureSection: VirtualBox cannot begin a capture on a running VM (API v1 answers 409; the
    capture starts with the VM, see test_virtualbox_api.py::test_capture)."""

    emulator = "virtualbox"
    create_body = {"name": "conformance", "vmname": BASE_VM, "linked_clone": False, "adapters": 1,
                   "enable_remote_console": True}
    update_body = {"name": "renamed", "headless": True, "ram": 512}
    console_expect = b":~# "
