"""The core's conformance kit, run against the example plugin."""

from gns3core.testing.conformance import EmulatorConformance


class TestExampleConformance(EmulatorConformance):
    emulator = "example"
    create_body = {"name": "example-1"}
    update_body = {"name": "example-renamed"}
