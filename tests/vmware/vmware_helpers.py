"""Small helpers shared by the VMware tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def base(project_id: str) -> str:
    return f"/v1/projects/{project_id}/vmware/vms"


async def create_vm(api, project: dict, vmx: Path | str, name: str = "vm1", **body: Any) -> dict[str, Any]:
    reply = await api.post(base(project["project_id"]), {"name": name, "vmx_path": str(vmx), "linked_clone": False,
                                                         **body})
    assert reply.status == 201, reply
    return reply.json


def vm_url(project: dict, vm: dict) -> str:
    return f"{base(project['project_id'])}/{vm['vm_id']}"


async def udp_nio(api, project: dict, rport: int) -> dict[str, Any]:
    lport = (await api.post(f"/v1/projects/{project['project_id']}/ports/udp")).json["udp_port"]
    return {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport}
