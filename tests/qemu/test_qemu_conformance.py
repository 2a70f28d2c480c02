"""The core's conformance kit against the Qemu plugin (real qemu binary needed to create a VM)."""

import pytest

from gns3core.testing.conformance import ConsoleSection, EmulatorConformance, StartStopSection


@pytest.mark.usefixtures("qemu_binary", "guest")
class TestQemuConformance(EmulatorConformance, StartStopSection, ConsoleSection):
    """Start/stop and the serial console run a real qemu booting the small test guest (its shell answers)."""

    emulator = "qemu"
    create_body = {"name": "conformance", "qemu_path": "qemu-system-x86_64", "ram": 128, "kernel_image": "vmlinuz",
                   "initrd": "initrd.gz", "kernel_command_line": "console=ttyS0 quiet panic=-1"}
    update_body = {"name": "renamed", "ram": 96, "adapters": 3, "options": "-rtc base=utc", "boot_priority": "d"}
    console_expect = b"guest# "
