"""The core's conformance kit against the VMware plugin and the stand-in VMware installation, with every optional
section: the stand-in VM really starts, serves its serial console and has its links joined by the data plane."""

import os

import pytest

from gns3core.testing import require
from gns3core.testing.conformance import (
    CaptureSection,
    ConsoleSection,
    EmulatorConformance,
    LinkChangeSection,
    StartStopSection,
)


class TestVMwareConformance(EmulatorConformance, StartStopSection, ConsoleSection, LinkChangeSection,
                            CaptureSection):
    emulator = "vmware"
    update_body = {"name": "renamed", "adapters": 2, "headless": True, "adapter_type": "vmxnet3"}
    console_expect = b"conformance$ "  # the stand-in guest's prompt

    @pytest.fixture(autouse=True)
    def vmx_of_the_test(self, standin, request) -> None:
        """Each test's own stand-in VM: the create body names its VMX file."""
        if not request.function.__qualname__.startswith("EmulatorConformance."):  # an optional section
            require(os.geteuid() == 0 and os.path.exists("/dev/net/tun"),
                    "a started stand-in VM needs root and /dev/net/tun for its vmnet interfaces")
        self.create_body = {"name": "conformance", "vmx_path": str(standin.make_vm("conformance")),
                            "linked_clone": False, "adapters": 1, "enable_remote_console": True}
