"""start_capture without `data_link_type` (api-1.5-release §7): one capture schema for every kind, the link type
optional and Ethernet (DLT_EN10MB) by default; the 1.5.4 client sends it, a seed-era client may not."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from lab import VPC, require_program

pytestmark = pytest.mark.timeout(180)

DLT_EN10MB = 1


@pytest.fixture(params=["dynamips", "builtin"])
def backend(request) -> str:
    if request.param == "dynamips":
        require_program("dynamips")
    return request.param


@pytest.fixture
def gns3_config_overrides(backend: str) -> dict:
    return {"Dynamips": {"switch_backend": backend}}


def link_type(pcap: Path) -> int:
    """The link type of a pcap's header, waiting (a liveness bound) for the writer to have flushed it."""
    deadline = time.monotonic() + 15
    while not (pcap.is_file() and pcap.stat().st_size >= 24) and time.monotonic() < deadline:
        time.sleep(0.05)
    magic, _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack("<IHHiIII", pcap.read_bytes()[:24])
    assert magic == 0xA1B2C3D4
    return network


async def test_switch_capture_without_a_link_type(api, project, backend, tmp_path) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "SW1", "device_type": "ethernet_switch"})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
    vpcs = require_program("vpcs")
    pcs = [VPC(vpcs, tmp_path, f"10.0.30.{n}", n) for n in (1, 2)]
    try:
        for port, pc in enumerate(pcs, start=1):
            body = {"nio": pc.nio(), "port_settings": {"type": "access", "vlan": 1, "ethertype": ""}}
            assert (await api.post(f"{url}/ports/{port}/nio", body)).status == 201
            await pc.launch()
        reply = await api.post(f"{url}/ports/1/start_capture", {"capture_file_name": "no-dlt.pcap"})
        assert reply.status == 200, reply
        pcap = Path(reply.json["pcap_file_path"])
        assert await pcs[0].ping("10.0.30.2") >= 2, pcs[0].log
        assert (await api.post(f"{url}/ports/1/stop_capture")).status == 204
    finally:
        for pc in pcs:
            pc.stop()
    assert link_type(pcap) == DLT_EN10MB and pcap.stat().st_size > 24 + 16
    # The 1.5.4 client's form (the type given) is accepted too; an unknown key is still refused.
    body = {"capture_file_name": "dlt.pcap", "data_link_type": "DLT_EN10MB"}
    assert (await api.post(f"{url}/ports/2/start_capture", body)).status == 200
    assert (await api.post(f"{url}/ports/2/stop_capture")).status == 204
    assert (await api.post(f"{url}/ports/2/start_capture", {**body, "colour": "red"})).status == 400


@pytest.mark.parametrize("backend", ["dynamips"], indirect=True)  # routers always run in dynamips
async def test_router_capture_without_a_link_type(api, project, dynamips_path, backend) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/vms", {"name": "R1", "image": "c-test.image",
                                                                "platform": "c3725", "ram": 128})
    assert reply.status == 201, reply
    url = f"/v1/projects/{pid}/dynamips/vms/{reply.json['vm_id']}"
    lport = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": lport + 1000}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    reply = await api.post(f"{url}/adapters/0/ports/0/start_capture", {"capture_file_name": "r1.pcap"})
    assert reply.status == 200, reply
    pcap = Path(reply.json["pcap_file_path"])
    assert (await api.post(f"{url}/adapters/0/ports/0/stop_capture")).status == 204
    assert link_type(pcap) == DLT_EN10MB  # dynamips was told en10mb and wrote the header (flushed on stop)
