"""The core's generic emulator tests, run against the VPCS plugin."""

from __future__ import annotations

import pytest

from gns3core.testing.conformance import ConsoleSection, EmulatorConformance, StartStopSection


@pytest.mark.usefixtures("vpcs_binary")
class TestVPCSConformance(EmulatorConformance, StartStopSection, ConsoleSection):
    """The start/stop and console sections run the real vpcs (a VPC starts once it has a link)."""

    emulator = "vpcs"
    create_body = {"name": "PC1"}
    update_body = {"name": "PC2", "startup_script": "set pcname PC2\nip 10.0.0.2 24\n"}
    console_expect = b"> "  # the prompt: "VPCS> ", or the name a startup script set
