"""JSON schemas (draft-04) of the Docker endpoints: API v1's fields plus the console and status this server adds."""

from __future__ import annotations

from gns3core import schemas

ADAPTERS = {"description": "Number of Ethernet adapters (eth0, eth1, ...)", "type": "integer", "minimum": 0,
            "maximum": 64}
NAME = schemas.string(schemas.NAME_LENGTH, "Container name", min_length=1)
IMAGE = schemas.string(schemas.PATH_LENGTH, "Docker image reference, e.g. busybox:latest", min_length=1)
STARTCMD = schemas.string(schemas.COMMAND_LINE_LENGTH, "Command run in the container instead of the image's CMD",
                          nullable=True, min_length=1)
ADAPTER_TYPE = schemas.string(schemas.NAME_LENGTH, "Adapter type (informational)", min_length=1)
CONSOLE = {"description": "Console TCP port (a string is accepted and ignored, as in API v1)",
           "oneOf": [schemas.CONSOLE_PORT, schemas.string(schemas.NAME_LENGTH, min_length=1)]}

CREATE = schemas.obj(
    {
        "vm_id": {"description": "Container VM id: a UUID reuses it, an integer (pre-1.3 id) is ignored",
                  "oneOf": [schemas.UUID, {"type": "integer"}]},
        "id": {"description": "Same as a UUID vm_id", **schemas.UUID},
        "name": NAME,
        "startcmd": STARTCMD,
        "imagename": IMAGE,
        "adapters": ADAPTERS,
        "adapter_type": ADAPTER_TYPE,
        "console": CONSOLE,
    },
    required=["name", "imagename"],
    description="Request validation to create a new Docker container",
)

UPDATE = schemas.obj(
    {
        "name": NAME,
        "image": IMAGE,
        "startcmd": STARTCMD,
        "adapters": ADAPTERS,
        "adapter_type": ADAPTER_TYPE,
        "console": schemas.CONSOLE_PORT,
    },
    description="Request validation to update a Docker container",
)

OUTPUT = schemas.obj(
    {
        "name": NAME,
        "vm_id": schemas.UUID,
        "id": schemas.UUID,
        "cid": {"description": "Docker container id", "type": "string", "minLength": 64, "maxLength": 64,
                "pattern": "^[a-zA-Z0-9_.-]{64}$"},
        "project_id": schemas.UUID,
        "image": {"type": "string", "minLength": 1},
        "startcmd": {"type": ["string", "null"]},
        "adapters": ADAPTERS,
        "adapter_type": {"type": "string", "minLength": 1},
        "console": {"type": ["integer", "null"]},
        "status": {"enum": ["started", "stopped", "suspended"]},
    },
    required=["name", "vm_id", "id", "project_id", "image", "adapters", "console", "status"],
    description="Docker container instance",
)

IMAGES = {
    "$schema": schemas.DRAFT4,
    "description": "Docker images available on the engine",
    "type": "array",
    "items": schemas.obj({"imagename": {"type": "string", "minLength": 1}}, required=["imagename"]),
}
