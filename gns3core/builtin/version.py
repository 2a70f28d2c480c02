"""GET/POST /v1/version: the API v1 release this server is compatible with."""

from __future__ import annotations

from typing import Any

from gns3core import schemas
from gns3core.errors import Conflict
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Encoded, Route

VERSION_OUTPUT = schemas.obj(
    {"version": {"type": "string"}, "local": {"type": "boolean"}}, required=["version"],
)


async def get_version(request: ApiRequest) -> Encoded:
    """Encoded once per configuration: clients poll this endpoint, it must cost next to nothing."""
    server = request.server
    cached = server.version_reply
    if cached is None or cached.data["version"] != server.version or cached.data["local"] != server.local:
        cached = server.version_reply = Encoded({"version": server.version, "local": server.local})
    return cached


async def check_version(request: ApiRequest) -> dict[str, Any]:
    server = request.server
    client = request.json["version"]
    if client != server.version:
        raise Conflict(f"Client version {client} differs with server version {server.version}")
    return {"version": server.version}


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/version", get_version, 200, output=VERSION_OUTPUT,
              description="Retrieve the server version number"),
        Route("POST", "/v1/version", check_version, 200, input=schemas.VERSION, output=VERSION_OUTPUT,
              description="Check that the client's version equals the server's"),
    ])
