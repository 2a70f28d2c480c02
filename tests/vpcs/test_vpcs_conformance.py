"""The core's generic emulator tests, run against the VPCS plugin on both backends (the real vpcs and the built-in
engine)."""

from __future__ import annotations

import pytest
from vpcs_helpers import BOTH_BACKENDS

from gns3core.testing.conformance import ConsoleSection, EmulatorConformance, StartStopSection

pytestmark = BOTH_BACKENDS


@pytest.mark.usefixtures("vpcs_binary")
class TestVPCSConformance(EmulatorConformance, StartStopSection, ConsoleSection):
    """The start/stop and console sections run a VPC (it starts once it has a link)."""

    emulator = "vpcs"
    create_body = {"name": "PC1"}
    update_body = {"name": "PC2", "startup_script": "set pcname PC2\nip 10.0.0.2 24\n"}
    console_expect = b"> "  # the prompt: "VPCS> ", or the name a startup script set

    @pytest.fixture(autouse=True)
    def _backend_in_use(self, vpcs_backend: str, gns3_server) -> None:
        assert gns3_server.emulators["vpcs"].backend() == vpcs_backend
