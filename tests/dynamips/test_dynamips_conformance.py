"""The core's conformance kit, run on routers (real dynamips) and on devices (both switch backends)."""

from __future__ import annotations

import pytest
from lab import require_program

from gns3core.testing.conformance import CaptureSection, EmulatorConformance, LinkChangeSection


class TestRouterConformance(EmulatorConformance):
    emulator = "dynamips"
    collection = "vms"
    create_body = {"name": "R1", "platform": "c7200", "image": "c7200-test.image", "ram": 256}
    update_body = {"name": "R2", "ram": 512}
    nio_path = "adapters/0/ports/0/nio"

    @pytest.fixture(autouse=True)
    def _dynamips(self):
        require_program("dynamips")


class _DeviceConformance(EmulatorConformance, LinkChangeSection, CaptureSection):
    """Switches and hubs run from creation: links change under traffic and captures record it, on both backends."""

    always_running = True
    emulator = "dynamips_devices"
    segment = "dynamips"  # the URLs are /dynamips/devices
    collection = "devices"
    id_field = "device_id"
    nio_path = "ports/0/nio"
    create_body = {"name": "SW1", "device_type": "ethernet_switch"}
    update_body = {"name": "SW2"}

    def nio_body(self, nio):
        return {"nio": nio}


class TestDeviceConformanceDynamips(_DeviceConformance):
    @pytest.fixture(autouse=True)
    def _dynamips(self):
        require_program("dynamips")

    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Dynamips": {"switch_backend": "dynamips"}}


class TestDeviceConformanceBuiltin(_DeviceConformance):
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Dynamips": {"switch_backend": "builtin"}}


class TestHubConformance(_DeviceConformance):
    create_body = {"name": "HUB1", "device_type": "ethernet_hub"}
