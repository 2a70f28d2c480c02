"""Version, configuration reload, shutdown, host interfaces and UDP port allocation endpoints."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import psutil
import pytest
from core_helpers import free_port_block

from gns3core.config import Config

LOCAL = {"Server": {"local": "true"}}


# -- version ----------------------------------------------------------------------------------------------------------

async def test_version_default(api) -> None:
    reply = await api.get("/v1/version")
    assert reply.status == 200
    assert reply.json == {"version": "1.5.4", "local": False}


@pytest.mark.parametrize("gns3_config_overrides", [LOCAL])
async def test_version_reports_local(api) -> None:
    assert (await api.get("/v1/version")).json == {"version": "1.5.4", "local": True}


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"compatibility_version": "1.5.2"}}])
async def test_version_is_configurable(api) -> None:
    assert (await api.get("/v1/version")).json["version"] == "1.5.2"
    reply = await api.post("/v1/version", {"version": "1.5.2"})
    assert reply.status == 200
    assert reply.json == {"version": "1.5.2"}
    reply = await api.post("/v1/version", {"version": "1.5.4"})
    assert reply.status == 409


async def test_version_check(api) -> None:
    reply = await api.post("/v1/version", {"version": "1.5.4", "local": True})
    assert reply.status == 200
    assert reply.json == {"version": "1.5.4"}
    reply = await api.post("/v1/version", {"version": "1.5.3"})
    assert reply.status == 409
    assert reply.json == {"status": 409, "message": "Client version 1.5.3 differs with server version 1.5.4"}
    reply = await api.post("/v1/version", {"version": "1.5.4 "})
    assert reply.status == 409  # exact string comparison
    reply = await api.post("/v1/version", {})
    assert reply.status == 400
    assert "'version' is a required property" in reply.json["message"]
    reply = await api.post("/v1/version", {"version": 154})
    assert reply.status == 400
    reply = await api.post("/v1/version", {"version": "1.5.4", "extra": 1})
    assert reply.status == 400


# -- configuration reload ---------------------------------------------------------------------------------------------

class TestWithIniFile:
    """A server reading a real INI file, with local mode and the directories given on the 'command line'."""

    @pytest.fixture
    def ini_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "gns3_server.conf"
        path.write_text("[Server]\ncompatibility_version = 1.5.3\nlocal = false\n[VPCS]\nvpcs_path = /opt/a/vpcs\n")
        return path

    @pytest.fixture
    def gns3_config(self, tmp_path: Path, ini_file: Path) -> Config:
        """A real INI file below command-line values (local mode and the directories come from the 'command line')."""
        overrides = {"Server": {"local": "true", "projects_path": str(tmp_path / "projects"),
                                "images_path": str(tmp_path / "images")}}
        return Config(files=[ini_file], overrides=overrides)

    async def test_reload_rereads_the_file_and_command_line_still_wins(self, api, ini_file, gns3_server) -> None:
        assert (await api.get("/v1/version")).json == {"version": "1.5.3", "local": True}
        ini_file.write_text("[Server]\ncompatibility_version = 1.5.1\nlocal = false\n[VPCS]\nvpcs_path = /opt/b/vpcs\n")
        reply = await api.post("/v1/config/reload", {})
        assert reply.status == 201
        assert reply.body == b""
        assert reply.headers["Content-Length"] == "0"
        assert (await api.get("/v1/version")).json == {"version": "1.5.1", "local": True}
        assert gns3_server.config.section("VPCS").get("vpcs_path") == "/opt/b/vpcs"

    async def test_reload_forbidden_when_not_local(self, api, gns3_server) -> None:
        gns3_server.config.set("Server", "local", "false")
        gns3_server.apply_config()
        reply = await api.post("/v1/config/reload")
        assert reply.status == 403
        assert reply.json == {"status": 403, "message": "You can only reload the configuration for a local server"}

    async def test_config_file_change_is_picked_up_without_a_request(self, api, ini_file, gns3_server) -> None:
        ini_file.write_text("[Server]\ncompatibility_version = 1.5.0\n")
        for _ in range(40):
            if gns3_server.version == "1.5.0":
                break
            await asyncio.sleep(0.1)
        assert (await api.get("/v1/version")).json == {"version": "1.5.0", "local": True}


def test_config_search_order_and_parse_errors(tmp_path: Path) -> None:
    first = tmp_path / "a.conf"
    second = tmp_path / "b.conf"
    broken = tmp_path / "c.conf"
    first.write_text("[Server]\nport = 1\nhost = 10.0.0.1\n[Qemu]\nenable_kvm = no\n")
    second.write_text("[Server]\nport = 2\n")
    broken.write_text("not an ini file at all\n")
    config = Config(files=[first, second, tmp_path / "missing.conf", broken], overrides={"Server": {"host": "::1"}})
    assert config.server.getint("port") == 2  # the later file wins
    assert config.server.get("host") == "::1"  # the command line wins
    assert config.section("Qemu").getbool("enable_kvm", True) is False
    assert config.section("Nothing").get("x") is None
    assert config.server.get("udp_start_port_range") == "10000"  # default
    assert config.loaded_files[:2] == [first, second]


# -- shutdown ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gns3_config_overrides", [LOCAL])
async def test_shutdown_local(api, gns3_server, project) -> None:
    calls = []
    gns3_server.request_stop = lambda: calls.append("stop")
    reply = await api.post("/v1/server/shutdown", {})
    assert reply.status == 201
    assert reply.body == b""
    assert (await api.get("/v1/projects")).json == []  # every project was closed
    for _ in range(20):
        if calls:
            break
        await asyncio.sleep(0.05)
    assert calls == ["stop"]


async def test_shutdown_forbidden_when_not_local(api, gns3_server, project) -> None:
    gns3_server.config.set("Server", "local", "false")
    gns3_server.apply_config()
    calls = []
    gns3_server.request_stop = lambda: calls.append("stop")
    reply = await api.post("/v1/server/shutdown")
    assert reply.status == 403
    assert reply.json["message"] == "You can only stop a local server"
    await asyncio.sleep(0.3)
    assert calls == []
    assert len((await api.get("/v1/projects")).json) == 1


# -- interfaces -------------------------------------------------------------------------------------------------------

async def test_interfaces_match_psutil(api) -> None:
    reply = await api.get("/v1/interfaces")
    assert reply.status == 200
    expected = {}
    for name, addresses in psutil.net_if_addrs().items():
        ipv4 = [a.address for a in addresses if a.family == socket.AF_INET]
        expected[name] = ipv4
    names = [item["name"] for item in reply.json]
    assert names == sorted(names)
    assert set(names) == set(expected)
    for item in reply.json:
        assert item["id"] == item["name"]
        if expected[item["name"]]:
            assert item["ip_address"] == expected[item["name"]][0]
        else:
            assert item["ip_address"] == ""
    assert any(item["name"] == "lo" and item["ip_address"] == "127.0.0.1" for item in reply.json)


# -- UDP ports --------------------------------------------------------------------------------------------------------

class TestUdpPorts:
    """A small private UDP range, found free on this (shared) machine just before the test."""

    @pytest.fixture
    def udp_base(self) -> int:
        return free_port_block(socket.SOCK_DGRAM, 6)

    @pytest.fixture
    def gns3_config_overrides(self, udp_base: int) -> dict:
        return {"Server": {"udp_start_port_range": str(udp_base), "udp_end_port_range": str(udp_base + 5)}}

    async def test_udp_port_allocation(self, api, gns3_server, project, udp_base) -> None:
        base = udp_base
        pid = project["project_id"]
        reply = await api.post(f"/v1/projects/{pid}/ports/udp", {})
        assert reply.status == 201
        assert reply.json == {"udp_port": base}
        assert reply.headers["X-Route"] == "/v1/projects/{project_id}/ports/udp"
        # A port someone else holds on the host is skipped.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("0.0.0.0", base + 1))
            assert (await api.post(f"/v1/projects/{pid}/ports/udp")).json == {"udp_port": base + 2}
        other = (await api.post("/v1/projects", {"name": "other"})).json["project_id"]
        # Never handed out twice, even to another project; the freed host port comes back.
        assert (await api.post(f"/v1/projects/{other}/ports/udp")).json == {"udp_port": base + 1}
        ports = [(await api.post(f"/v1/projects/{other}/ports/udp")).json["udp_port"] for _ in range(3)]
        assert ports == [base + 3, base + 4, base + 5]
        reply = await api.post(f"/v1/projects/{other}/ports/udp")
        assert reply.status == 409
        assert f"between {base} and {base + 5}" in reply.json["message"]
        assert gns3_server.ports.ports_of(pid)[1] == {base, base + 2}
        await api.delete(f"/v1/projects/{other}")
        assert gns3_server.ports.udp_used == {base, base + 2}


async def test_udp_port_unknown_project(api) -> None:
    assert (await api.post(f"/v1/projects/{uuid.uuid4()}/ports/udp")).status == 404
    assert (await api.post("/v1/projects/nope/ports/udp")).status == 400


async def test_reload_applies_new_port_ranges(api, gns3_server) -> None:
    gns3_server.config.set("Server", "udp_start_port_range", "31500")
    gns3_server.config.set("Server", "udp_end_port_range", "31600")
    gns3_server.reload_config()
    pid = (await api.post("/v1/projects", {"name": "ranges"})).json["project_id"]
    port = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    assert 31500 <= port <= 31600
