"""The core's generic emulator tests, run against the VPCS plugin."""

from __future__ import annotations

from gns3core.testing.conformance import EmulatorConformance


class TestVPCSConformance(EmulatorConformance):
    emulator = "vpcs"
    create_body = {"name": "PC1"}
    update_body = {"name": "PC2", "startup_script": "set pcname PC2\nip 10.0.0.2 24\n"}
