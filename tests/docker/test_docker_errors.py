"""What a user sees when the engine is missing or refuses: 409 with a message that says what to do."""

from __future__ import annotations

import pytest
from dockerd import TEST_IMAGE, Dockerd
from gns3_docker.manager import DockerManager

from gns3core.config import Config


class TestUnreachableEngine:
    @pytest.fixture
    def gns3_config_overrides(self, tmp_path) -> dict[str, dict[str, str]]:
        return {"Docker": {"docker_host": f"unix://{tmp_path}/no-engine-here.sock"}}

    async def test_image_list_says_how_to_start_an_engine(self, api) -> None:
        reply = await api.get("/v1/docker/images")
        assert reply.status == 409
        message = reply.json["message"]
        assert "Cannot reach the Docker Engine at unix://" in message
        assert "dockerd" in message and "DOCKER_HOST" in message and "docker_host" in message

    async def test_create_fails_cleanly(self, api, project, gns3_server) -> None:
        reply = await api.post(f"/v1/projects/{project['project_id']}/docker/images",
                               {"name": "box", "imagename": TEST_IMAGE})
        assert reply.status == 409
        assert "Cannot reach the Docker Engine" in reply.json["message"]
        assert not gns3_server.emulators["docker"].vms
        assert gns3_server.ports.ports_of(project["project_id"]) == (set(), set())

    def test_probe_reports_no_engine(self, tmp_path) -> None:
        config = Config(files=[], overrides={"Docker": {"docker_host": f"unix://{tmp_path}/none.sock"}})
        status = DockerManager.probe(config)
        assert not status.found and "no Docker Engine answers" in status.message


def test_probe_reports_the_engine_version(docker_engine: Dockerd) -> None:
    status = DockerManager.probe(Config(files=[], overrides={"Docker": {"docker_host": docker_engine.docker_host}}))
    assert status.found and status.version and "API 1." in status.version


class TestEngineRefusals:
    @pytest.fixture
    def gns3_config_overrides(self, docker_engine: Dockerd) -> dict[str, dict[str, str]]:
        # SYS_RESOURCE is missing from this sandbox's bounding set (see docs/docker.md): the engine refuses to start
        return {"Docker": {"docker_host": docker_engine.docker_host, "cap_add": "NET_ADMIN,SYS_RESOURCE"}}

    async def test_refused_start_is_a_409_with_the_engines_message(self, api, project, docker_engine) -> None:
        base = f"/v1/projects/{project['project_id']}/docker/images"
        box = (await api.post(base, {"name": "box", "imagename": TEST_IMAGE, "adapters": 1})).json
        reply = await api.post(f"{base}/{box['vm_id']}/start")
        if reply.status == 204:
            pytest.skip("this host grants CAP_SYS_RESOURCE, so the engine does not refuse")
        assert reply.status == 409
        assert reply.json["message"].startswith("Docker has returned an error: ")
        assert "caps" in reply.json["message"] or "permitted" in reply.json["message"]
        assert (await api.get(f"{base}/{box['vm_id']}")).json["status"] == "stopped"

    async def test_missing_image(self, api, project) -> None:
        reply = await api.post(f"/v1/projects/{project['project_id']}/docker/images",
                               {"name": "box", "imagename": "gns3test/not-there:1"})
        assert reply.status == 409
        assert "gns3test/not-there:1 is not on the engine" in reply.json["message"]

    async def test_nio_on_a_missing_adapter(self, api, project) -> None:
        base = f"/v1/projects/{project['project_id']}/docker/images"
        box = (await api.post(base, {"name": "box", "imagename": TEST_IMAGE})).json
        reply = await api.post(f"{base}/{box['vm_id']}/adapters/0/ports/0/nio",
                               {"type": "nio_udp", "lport": 4242, "rhost": "127.0.0.1", "rport": 4243})
        assert reply.status == 409 and "Adapter 0 doesn't exist" in reply.json["message"]
