"""Host network interfaces and UDP tunnel ports."""

from __future__ import annotations

import socket
from typing import Any

from gns3core import schemas
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route


def host_interfaces() -> list[dict[str, Any]]:
    """Every interface the OS knows, sorted by name, with its first IPv4 address (the seed's choice: released 1.5.x
    took the last one, which no client reads) and its link-layer address."""
    import psutil  # imported on use: it is not needed on the request hot path

    result = []
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        ipv4 = next((a.address for a in addresses if a.family == socket.AF_INET), "")
        # `mac_address`: added by released GNS3 1.5.x ("" when the interface has none, as lo on some hosts).
        mac = next((a.address for a in addresses if a.family == psutil.AF_LINK), "")
        result.append({"id": name, "name": name, "ip_address": ipv4, "mac_address": mac})
    return result


async def list_interfaces(request: ApiRequest) -> list[dict[str, Any]]:
    return host_interfaces()


async def allocate_udp_port(request: ApiRequest) -> dict[str, Any]:
    project = request.project
    return {"udp_port": request.server.ports.get_free_udp_port(project.id)}


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/interfaces", list_interfaces, 200, output=schemas.INTERFACE_LIST,
              description="List the host's network interfaces"),
        Route("POST", "/v1/projects/{project_id}/ports/udp", allocate_udp_port, 201, output=schemas.UDP_PORT_OBJECT,
              description="Allocate a UDP port for a tunnel"),
    ])
