"""The core's conformance kit, run against the example plugin (with the start/stop section: its VM is a process)."""

from gns3core.testing.conformance import EmulatorConformance, StartStopSection


class TestExampleConformance(EmulatorConformance, StartStopSection):
    emulator = "example"
    create_body = {"name": "example-1"}
    update_body = {"name": "example-renamed"}
