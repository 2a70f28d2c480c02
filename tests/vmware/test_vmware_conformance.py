"""The core's conformance kit against the VMware plugin and the stand-in VMware installation."""

import pytest

from gns3core.testing.conformance import EmulatorConformance


class TestVMwareConformance(EmulatorConformance):
    emulator = "vmware"
    update_body = {"name": "renamed", "adapters": 2, "headless": True, "adapter_type": "vmxnet3"}

    @pytest.fixture(autouse=True)
    def vmx_of_the_test(self, standin) -> None:
        """Each test's own stand-in VM: the create body names its VMX file."""
        self.create_body = {"name": "conformance", "vmx_path": str(standin.make_vm("conformance")),
                            "linked_clone": False, "adapters": 1}
