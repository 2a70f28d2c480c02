"""The core's conformance kit against the Docker plugin and a real (private) engine, on both route families, with
every optional section: containers really start and stop, their console answers, links change while they run, and
captures are written."""

from dockerd import TEST_IMAGE

from gns3core.testing.conformance import (
    CaptureSection,
    ConsoleSection,
    EmulatorConformance,
    LinkChangeSection,
    StartStopSection,
)


class TestDockerSeedConformance(EmulatorConformance, StartStopSection, ConsoleSection, LinkChangeSection,
                                CaptureSection):
    """The seed's `/docker/images/{id}` routes with a seed body."""

    emulator = "docker"
    collection = "images"
    id_field = "id"
    create_body = {"name": "conformance", "imagename": TEST_IMAGE, "adapters": 1}
    update_body = {"name": "renamed", "adapters": 2}
    console_expect = b"# "  # busybox's shell prompt, after the greeting


class TestDockerReleaseConformance(EmulatorConformance, StartStopSection, ConsoleSection, LinkChangeSection,
                                   CaptureSection):
    """The released 1.5.x `/docker/vms/{vm_id}` routes with a 1.5.4 body."""

    emulator = "docker"
    collection = "vms"
    id_field = "vm_id"
    create_body = {"name": "conformance", "image": TEST_IMAGE, "adapters": 1, "console_type": "telnet"}
    update_body = {"name": "renamed", "adapters": 2, "console_http_path": "/x"}
    console_expect = b"# "
