"""A console port asked for that is taken (issue: "replaced silently"). API v1 never refuses a requested console
port: it takes a free one and says so in a `log.warning` naming both ports (api-core §7.2). Released 1.5.x stopped
sending that notification; the seed's behaviour is kept (api-1.5-release §15 #8), so nothing is silent."""

from __future__ import annotations

import socket
from typing import Any

from vpcs_helpers import next_event

from gns3core.testing.client import ApiClient


def bind_inside(sock: socket.socket, gns3_server) -> int:
    """Bind a port of the server's console range that the server does not hold."""
    console_range = gns3_server.ports.console_range
    for port in range(console_range.start, console_range.end + 1):
        if port in gns3_server.ports.tcp_used:
            continue
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port in the console range")


async def test_taken_console_ports_are_replaced_with_a_warning(api: ApiClient, project: dict[str, Any],
                                                              gns3_server) -> None:
    pid = project["project_id"]
    base = f"/v1/projects/{pid}/vpcs/vms"
    first = (await api.post(base, {"name": "PC1"})).json
    async with api.client.get(f"/v1/projects/{pid}/notifications") as stream:
        # Held by another VM of this server.
        reply = await api.post(base, {"name": "PC2", "console": first["console"]})
        assert reply.status == 201 and reply.json["console"] != first["console"]
        warning = await next_event(stream, "log.warning")
        assert warning["event"]["message"] == (f"TCP port {first['console']} already in use on host 127.0.0.1. "
                                               f"Port has been replaced by {reply.json['console']}")
        # Held by another program on the host, inside the console range.
        with socket.socket() as squatter:
            taken = bind_inside(squatter, gns3_server)
            squatter.listen()
            reply = await api.put(f"{base}/{reply.json['vm_id']}", {"console": taken})
            assert reply.status == 200 and reply.json["console"] != taken
        warning = await next_event(stream, "log.warning")
        assert warning["event"]["message"] == (f"TCP port {taken} already in use on host 127.0.0.1. "
                                               f"Port has been replaced by {reply.json['console']}")
        # Outside the console range.
        reply = await api.put(f"{base}/{reply.json['vm_id']}", {"console": 1})
        warning = await next_event(stream, "log.warning")
        assert warning["event"]["message"].startswith("TCP port 1 is outside the range ")
    # The port each VM really uses is the one in its answer, and it is held.
    assert {first["console"], reply.json["console"]} <= gns3_server.ports.tcp_used
