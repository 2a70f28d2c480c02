"""The core's conformance kit against the Qemu plugin (real qemu binary needed to create a VM)."""

import pytest

from gns3core.testing.conformance import EmulatorConformance


@pytest.mark.usefixtures("qemu_binary")
class TestQemuConformance(EmulatorConformance):
    emulator = "qemu"
    create_body = {"name": "conformance", "qemu_path": "qemu-system-x86_64", "ram": 64}
    update_body = {"name": "renamed", "ram": 96, "adapters": 3, "options": "-rtc base=utc", "boot_priority": "d"}
