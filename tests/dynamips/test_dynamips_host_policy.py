"""Dynamips strings and host files: nothing a request sends can break the hypervisor's line protocol, and UNIX/VDE
socket files stay inside the project's dynamips directory on a server that is not local."""

from __future__ import annotations

from pathlib import Path

import pytest
from gns3_dynamips.hypervisor import quote

from gns3core.errors import EmulatorError

SWITCH = {"name": "SW1", "device_type": "ethernet_switch"}


def devices(project: dict) -> str:
    return f"/v1/projects/{project['project_id']}/dynamips/devices"


@pytest.fixture
def gns3_config_overrides():
    return {"Dynamips": {"switch_backend": "dynamips"}}


def test_quote_refuses_what_would_break_the_protocol() -> None:
    for bad in ('a"b', "a\nb", "a\rb", "a\x00b"):
        with pytest.raises(EmulatorError):
            quote(bad)
    assert quote("R1 name") == '"R1 name"'


async def test_nul_and_line_breaks_never_reach_the_hypervisor(api, project, dynamips_path) -> None:
    device = (await api.post(devices(project), SWITCH)).json
    url = f"{devices(project)}/{device['device_id']}"
    for name in ("x\u0000y", "x\ny", 'x"y'):
        reply = await api.put(url, {"name": name})
        assert reply.status in (400, 409), name
    reply = await api.put(url, {"name": "still-fine"})  # the hypervisor still answers at once
    assert reply.status == 200 and reply.json["name"] == "still-fine"


async def test_unix_socket_files_stay_in_the_project(api, project, dynamips_path, tmp_path: Path) -> None:
    device = (await api.post(devices(project), SWITCH)).json
    url = f"{devices(project)}/{device['device_id']}/ports/1/nio"
    outside = {"type": "nio_unix", "local_file": str(tmp_path / "evil.sock"), "remote_file": "/tmp/peer.sock"}
    reply = await api.post(url, {"nio": outside})
    assert reply.status == 409
    assert "nio_unix local_file" in reply.json["message"] and "--local" in reply.json["message"]
    assert not (tmp_path / "evil.sock").exists()
    inside = Path(project["path"]) / "project-files" / "dynamips" / "sw1.sock"
    reply = await api.post(url, {"nio": {"type": "nio_unix", "local_file": str(inside),
                                         "remote_file": str(inside.with_name("peer.sock"))}})
    # Past the policy: what dynamips itself makes of the socket pair is its own business (here it may refuse).
    assert reply.status == 201 or "not allowed on this server" not in reply.json["message"], reply
    reply = await api.post(f"{devices(project)}/{device['device_id']}/ports/2/nio",
                           {"nio": {"type": "nio_vde", "control_file": "/run/vde.ctl", "local_file": str(inside)}})
    assert reply.status == 409 and "nio_vde control_file" in reply.json["message"]
