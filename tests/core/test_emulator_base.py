"""Behaviour of the emulator base classes seen through the API (gns3core/emulator is built on by every plugin)."""

from __future__ import annotations

import asyncio
import json

from gns3core.testing import is_ping


async def test_create_with_the_id_of_another_projects_vm(api) -> None:
    first = (await api.post("/v1/projects", {"name": "a"})).json["project_id"]
    second = (await api.post("/v1/projects", {"name": "b"})).json["project_id"]
    vm = (await api.post(f"/v1/projects/{first}/example/vms", {"name": "v"})).json
    reply = await api.post(f"/v1/projects/{second}/example/vms", {"name": "v", "vm_id": vm["vm_id"]})
    assert reply.status == 404
    assert "doesn't belong to" in reply.json["message"]
    assert (await api.get(f"/v1/projects/{first}/example/vms/{vm['vm_id']}")).status == 200


async def test_create_with_a_known_id_in_the_same_project(api, project) -> None:
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "v"})).json
    again = await api.post(f"/v1/projects/{pid}/example/vms", {"name": "v", "vm_id": vm["vm_id"]})
    assert again.status == 201
    assert again.json == vm


async def test_clean_exit_is_a_warning_not_an_error(api, project, gns3_server) -> None:
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/example/vms", {"name": "v"})).json
    async with api.client.get(f"/v1/projects/{pid}/notifications") as response:
        assert is_ping(json.loads(await asyncio.wait_for(response.content.readline(), 5)))
        gns3_server.emulators["example"].vms[vm["vm_id"]].process_exited(0, "bye\n")
        first = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        second = json.loads(await asyncio.wait_for(response.content.readline(), 5))
    assert first == {"action": "log.warning",
                     "event": {"message": "Example process has stopped, return code: 0\nbye\n"}}
    assert second["action"] == "vm.stopped"
