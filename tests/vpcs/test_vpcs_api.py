"""The VPCS endpoints field by field, and their error cases (api-emulators.md §3), on an in-process server.

The endpoint tests run on both backends (the real vpcs and the built-in engine): a client sees no difference.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from vpcs_helpers import BOTH_BACKENDS, fake_vpcs

from gns3core.testing.client import ApiClient


def vms(project: dict[str, Any]) -> str:
    return f"/v1/projects/{project['project_id']}/vpcs/vms"


async def create(api: ApiClient, project: dict[str, Any], **body: Any) -> dict[str, Any]:
    reply = await api.post(vms(project), {"name": "PC1", **body})
    assert reply.status == 201, reply
    return reply.json


async def udp_nio(api: ApiClient, project: dict[str, Any]) -> dict[str, Any]:
    ports = [(await api.post(f"/v1/projects/{project['project_id']}/ports/udp")).json["udp_port"] for _ in range(2)]
    return {"type": "nio_udp", "lport": ports[0], "rhost": "127.0.0.1", "rport": ports[1]}


@BOTH_BACKENDS
async def test_create_without_script(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project)
    assert vm["status"] == "stopped"
    assert vm["startup_script"] is None and vm["startup_script_path"] is None
    assert isinstance(vm["console"], int)
    directory = Path(vm["vm_directory"])
    assert directory.is_dir() and directory.name == vm["vm_id"] and directory.parent.name == "vpcs"
    assert not (directory / "startup.vpc").exists()
    assert (await create(api, project, name="PC2", startup_script=None))["startup_script_path"] is None


@BOTH_BACKENDS
async def test_create_with_script_replaces_h(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project, name="PC-A", startup_script="set pcname %h\nip 10.0.0.1 24\n")
    assert vm["startup_script"] == "set pcname PC-A\nip 10.0.0.1 24\n"
    assert vm["startup_script_path"] == "startup.vpc"
    assert (Path(vm["vm_directory"]) / "startup.vpc").read_text() == "set pcname PC-A\nip 10.0.0.1 24\n"


@BOTH_BACKENDS
async def test_update_script_and_null_script(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project, name="PC-A", startup_script="set pcname %h\n")
    url = f"{vms(project)}/{vm['vm_id']}"
    reply = await api.put(url, {"startup_script": "echo %h\nip 10.0.0.9 24"})
    assert reply.status == 200
    assert reply.json["startup_script"] == "echo PC-A\nip 10.0.0.9 24"
    reply = await api.put(url, {"startup_script": None})
    assert reply.json["startup_script"] == "" and reply.json["startup_script_path"] == "startup.vpc"
    assert (Path(vm["vm_directory"]) / "startup.vpc").read_text() == ""


@BOTH_BACKENDS
async def test_rename_keeps_pcname_in_step(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project, name="1", startup_script="set pcname %h\nip 10.0.0.1 24\n")
    url = f"{vms(project)}/{vm['vm_id']}"
    reply = await api.put(url, {"name": "PC-B"})
    assert reply.json["name"] == "PC-B"
    assert reply.json["startup_script"] == "set pcname PC-B\nip 10.0.0.1 24\n"
    reply = await api.put(url, {"name": None})
    assert reply.status == 200 and reply.json["name"] == "PC-B"


@BOTH_BACKENDS
async def test_update_applies_name_before_script(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project)
    reply = await api.put(f"{vms(project)}/{vm['vm_id']}", {"startup_script": "set pcname %h", "name": "late"})
    assert reply.json["startup_script"] == "set pcname late"


@BOTH_BACKENDS
async def test_console_change_and_release(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    vm = await create(api, project)
    old = vm["console"]
    new = max(gns3_server.ports.tcp_used) + 7
    reply = await api.put(f"{vms(project)}/{vm['vm_id']}", {"console": new})
    assert reply.status == 200 and reply.json["console"] == new
    assert new in gns3_server.ports.tcp_used and old not in gns3_server.ports.tcp_used
    same = await api.put(f"{vms(project)}/{vm['vm_id']}", {"console": new})
    assert same.json["console"] == new
    assert (await api.delete(f"{vms(project)}/{vm['vm_id']}")).status == 204
    assert new not in gns3_server.ports.tcp_used


@BOTH_BACKENDS
async def test_requested_console_in_use_is_replaced(api: ApiClient, project: dict[str, Any]) -> None:
    first = await create(api, project)
    second = await create(api, project, name="PC2", console=first["console"])
    assert second["console"] != first["console"]


@BOTH_BACKENDS
async def test_nio_ports(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    vm = await create(api, project)
    base = f"{vms(project)}/{vm['vm_id']}/adapters"
    nio = await udp_nio(api, project)
    assert nio["lport"] + 9 in gns3_server.ports.udp_used  # vpcs 0.5b2's relay port is held with the tunnel port
    reply = await api.post(f"{base}/0/ports/1/nio", nio)
    assert reply.status == 409 and "Port 1 doesn't exist" in reply.json["message"]
    reply = await api.post(f"{base}/3/ports/0/nio", nio)  # the adapter number is ignored, as the reference did
    assert reply.status == 201 and reply.json == nio
    reply = await api.post(f"{base}/0/ports/0/nio", {"type": "nio_tap", "tap_device": "tap-vpcs0"})
    assert reply.status == 201 and reply.json == {"type": "nio_tap", "tap_device": "tap-vpcs0"}
    assert nio["lport"] not in gns3_server.ports.udp_used and nio["lport"] + 9 not in gns3_server.ports.udp_used
    reply = await api.post(f"{base}/0/ports/0/nio", {"type": "nio_nat"})
    assert reply.status == 409 and reply.json["message"] == "NIO of type nio_nat is not supported"
    assert (await api.delete(f"{base}/0/ports/0/nio")).status == 204
    assert (await api.delete(f"{base}/0/ports/0/nio")).status == 204  # no NIO there: still fine
    assert (await api.delete(f"{base}/0/ports/2/nio")).status == 409


@BOTH_BACKENDS
async def test_start_without_nio(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project)
    reply = await api.post(f"{vms(project)}/{vm['vm_id']}/start")
    assert reply.status == 409
    assert reply.json["message"] == "This VPCS instance must be connected in order to start"


class TestMissingBinary:
    @pytest.fixture
    def gns3_config_overrides(self) -> dict[str, dict[str, str]]:
        return {"VPCS": {"vpcs_path": "/nonexistent/bin/vpcs"}}

    async def test_start_names_the_missing_binary(self, api: ApiClient, project: dict[str, Any]) -> None:
        vm = await create(api, project)
        url = f"{vms(project)}/{vm['vm_id']}"
        assert (await api.post(f"{url}/adapters/0/ports/0/nio", await udp_nio(api, project))).status == 201
        reply = await api.post(f"{url}/start")
        assert reply.status == 409
        assert reply.json["message"] == "VPCS program '/nonexistent/bin/vpcs' is not accessible"
        assert (await api.get(url)).json["status"] == "stopped"


class TestUnsupportedVersion:
    @pytest.fixture
    def gns3_config_overrides(self, tmp_path: Path) -> dict[str, dict[str, str]]:
        binary = fake_vpcs(tmp_path, "Welcome to Virtual PC Simulator, version 0.7")
        return {"VPCS": {"vpcs_path": str(binary)}}

    async def test_start_refuses_the_version(self, api: ApiClient, project: dict[str, Any]) -> None:
        vm = await create(api, project)
        url = f"{vms(project)}/{vm['vm_id']}"
        await api.post(f"{url}/adapters/0/ports/0/nio", await udp_nio(api, project))
        reply = await api.post(f"{url}/start")
        assert reply.status == 409 and "version must be >= 0.8b" in reply.json["message"]


@BOTH_BACKENDS
async def test_limit_of_255_per_project(api: ApiClient, project: dict[str, Any], gns3_server) -> None:
    created = [await create(api, project, name=f"PC{i}") for i in range(255)]
    macs = sorted(vm.mac_id for vm in gns3_server.emulators["vpcs"].vms.values())
    assert macs == list(range(255))
    reply = await api.post(vms(project), {"name": "one too many"})
    assert reply.status == 409
    assert reply.json["message"] == "Cannot create a new VPCS VM (limit of 255 VMs reached on this host)"
    other = (await api.post("/v1/projects", {"name": "other"})).json
    assert (await api.post(vms(other), {"name": "elsewhere"})).status == 201  # the pool is per project
    await api.delete(f"{vms(project)}/{created[17]['vm_id']}")
    again = await create(api, project, name="again")
    assert gns3_server.emulators["vpcs"].vms[again["vm_id"]].mac_id == 17


@BOTH_BACKENDS
async def test_legacy_integer_id_adopts_the_old_directory(api: ApiClient, project: dict[str, Any]) -> None:
    old = Path(project["path"]) / "project-files" / "vpcs" / "pc-7"
    old.mkdir(parents=True)
    (old / "startup.vpc").write_text("set pcname legacy\n")
    vm = await create(api, project, vm_id=7, name="legacy")
    uuid.UUID(vm["vm_id"])
    assert vm["startup_script"] == "set pcname legacy\n"
    assert not old.exists()


@BOTH_BACKENDS
async def test_create_rejects_bad_fields(api: ApiClient, project: dict[str, Any]) -> None:
    for body in ({"name": ""}, {"name": "x", "console": 0}, {"name": "x", "vm_id": "nope"},
                 {"name": "x", "startup_script": 3}, {"console": 2000}):
        assert (await api.post(vms(project), body)).status == 400, body
    vm = await create(api, project)
    reply = await api.put(f"{vms(project)}/{vm['vm_id']}", {"startup_script_path": "x"})
    assert reply.status == 400


@BOTH_BACKENDS
async def test_delete_keeps_files_until_commit(api: ApiClient, project: dict[str, Any]) -> None:
    vm = await create(api, project, startup_script="set pcname %h")
    directory = Path(vm["vm_directory"])
    assert (await api.delete(f"{vms(project)}/{vm['vm_id']}")).status == 204
    assert directory.is_dir()
    assert (await api.post(f"/v1/projects/{project['project_id']}/commit")).status == 204
    assert not directory.exists()
