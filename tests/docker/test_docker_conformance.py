"""The core's conformance kit against the Docker plugin and a real (private) engine."""

from dockerd import TEST_IMAGE

from gns3core.testing.conformance import EmulatorConformance


class TestDockerConformance(EmulatorConformance):
    emulator = "docker"
    collection = "images"
    id_field = "id"
    create_body = {"name": "conformance", "imagename": TEST_IMAGE, "adapters": 1}
    update_body = {"name": "renamed", "adapters": 2}
