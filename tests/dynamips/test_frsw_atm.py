"""Frame-Relay and ATM switches: mappings accepted by the real hypervisor and read back as API v1 shows them."""

from __future__ import annotations

import pytest
from gns3_dynamips.hypervisor import HypervisorError


@pytest.fixture(autouse=True)
def _dynamips(dynamips_path):
    return dynamips_path


async def udp_pair(api, pid: str) -> tuple[dict, dict]:
    a = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    b = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    return ({"type": "nio_udp", "lport": a, "rhost": "127.0.0.1", "rport": a + 1000},
            {"type": "nio_udp", "lport": b, "rhost": "127.0.0.1", "rport": b + 1000})


async def test_frame_relay_mappings(api, project, gns3_server) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "FR1", "device_type": "frame_relay_switch"})
    assert reply.status == 201, reply
    fr = reply.json["device_id"]
    base = f"/v1/projects/{pid}/dynamips/devices/{fr}"
    nio1, nio2 = await udp_pair(api, pid)
    mappings = {"1:102": "2:201", "2:201": "1:102"}
    assert (await api.post(f"{base}/ports/1/nio", {"nio": nio1, "mappings": mappings})).status == 201
    assert (await api.get(base)).json["mappings"] == {}  # port 2 has no NIO yet: skipped
    assert (await api.post(f"{base}/ports/2/nio", {"nio": nio2, "mappings": mappings})).status == 201
    device = (await api.get(base)).json
    assert device["mappings"] == {"(1, 102)": "(2, 201)", "(2, 201)": "(1, 102)"}
    assert set(device) == {"name", "device_id", "project_id", "mappings"}

    # The circuits really exist in dynamips: creating them again is refused by the hypervisor itself.
    switch = gns3_server.emulators["dynamips_devices"].vms[fr]
    for src, dst in ((1, 2), (2, 1)):
        dlci_src, dlci_dst = (102, 201) if src == 1 else (201, 102)
        with pytest.raises(HypervisorError):
            await switch.hypervisor.send(f'frsw create_vc "FR1" {switch.nio_names[src]} {dlci_src} '
                                         f"{switch.nio_names[dst]} {dlci_dst}")
    reply = await api.post(f"{base}/ports/3/nio", {"nio": nio1, "mappings": {"3:1": 5}})
    assert reply.status == 409 and reply.json["message"] == "Invalid Frame-Relay mappings"
    assert (await api.post(f"{base}/ports/2/nio", {"nio": nio2})).json["message"] == "Port 2 isn't free"

    assert (await api.delete(f"{base}/ports/1/nio")).status == 204
    assert (await api.get(base)).json["mappings"] == {}
    assert (await api.delete(f"{base}/ports/1/nio")).json["message"] == "Port 1 is not allocated"
    reply = await api.put(base, {"name": "FR2"})
    assert reply.status == 200 and reply.json["name"] == "FR2"


async def test_atm_mappings(api, project, gns3_server) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "ATM1", "device_type": "atm_switch"})
    assert reply.status == 201
    atm = reply.json["device_id"]
    base = f"/v1/projects/{pid}/dynamips/devices/{atm}"
    nio1, nio2 = await udp_pair(api, pid)
    mappings = {"1:10:100": "2:20:200", "1:1": "2:2"}
    assert (await api.post(f"{base}/ports/1/nio", {"nio": nio1})).status == 201
    assert (await api.post(f"{base}/ports/2/nio", {"nio": nio2, "mappings": mappings})).status == 201
    assert (await api.get(base)).json["mappings"] == {
        "(1, 10, 100)": "(2, 20, 200)", "(2, 20, 200)": "(1, 10, 100)", "(1, 1)": "(2, 2)", "(2, 2)": "(1, 1)",
    }
    switch = gns3_server.emulators["dynamips_devices"].vms[atm]
    with pytest.raises(HypervisorError):
        await switch.hypervisor.send(f'atmsw create_vpc "ATM1" {switch.nio_names[2]} 2 {switch.nio_names[1]} 1')
    reply = await api.put(base, {"name": "ATM2"})
    assert reply.status == 200, reply
    assert (await api.delete(f"{base}/ports/2/nio")).status == 204
    assert (await api.get(base)).json["mappings"] == {}
    # Gone in dynamips too: the same VC can be created again.
    await switch.hypervisor.send(f'atmsw create_vcc "ATM2" {switch.nio_names[1]} 10 100 {switch.nio_names[1]} 11 110')


async def test_capture_and_settings_rules(api, project) -> None:
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "SW", "device_type": "ethernet_switch"})
    base = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
    capture = {"capture_file_name": "x.pcap", "data_link_type": "DLT_EN10MB"}
    reply = await api.post(f"{base}/ports/1/start_capture", capture)
    assert reply.status == 409 and reply.json["message"] == "Port 1 is not allocated"
    nio1, _ = await udp_pair(api, pid)
    assert (await api.post(f"{base}/ports/1/nio", {"nio": nio1})).status == 201
    assert (await api.get(base)).json["ports"] == []  # a port without settings is not listed
    reply = await api.put(base, {"ports": [{"port": 1, "type": "qinq", "vlan": 100}]})
    assert reply.status == 200
    assert reply.json["ports"] == [{"port": 1, "type": "qinq", "vlan": 100, "ethertype": "0x8100"}]
    reply = await api.put(base, {"ports": [{"port": 1, "type": "qinq", "vlan": 100, "ethertype": "0x88A8"}]})
    assert reply.status == 409 and ">= 0.2.16" in reply.json["message"]
    reply = await api.put(base, {"ports": [{"port": 7, "type": "access", "vlan": 1}]})
    assert reply.status == 409 and reply.json["message"] == "Port 7 is not allocated"
    assert (await api.post(f"{base}/ports/1/start_capture", capture)).status == 200
    reply = await api.post(f"{base}/ports/1/start_capture", capture)
    assert reply.status == 409 and "already a filter" in reply.json["message"]
    assert (await api.post(f"{base}/ports/1/stop_capture")).status == 204
    reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "X", "device_type": "bridge"})
    assert reply.status == 409 and reply.json["message"] == "Unknown device type: bridge"


class TestWithoutDynamips:
    @pytest.fixture
    def gns3_config_overrides(self, tmp_path):
        return {"Dynamips": {"dynamips_path": str(tmp_path / "no-dynamips-here")}}

    async def test_fr_atm_refused_switch_builtin(self, api, project, gns3_server) -> None:
        pid = project["project_id"]
        for kind, word in (("frame_relay_switch", "Frame-Relay"), ("atm_switch", "ATM")):
            reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "X", "device_type": kind})
            assert reply.status == 409
            assert reply.json["message"].startswith(f"{word} switches need dynamips")
        reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "S", "device_type": "ethernet_switch"})
        assert reply.status == 201
        device = gns3_server.emulators["dynamips_devices"].vms[reply.json["device_id"]]
        assert type(device).__name__ == "BuiltinEthernetSwitch"
        reply = await api.post(f"/v1/projects/{pid}/dynamips/vms",
                               {"name": "R1", "platform": "c7200", "image": "x.image", "ram": 256})
        assert reply.status == 409 and "Dynamips is required" in reply.json["message"]
