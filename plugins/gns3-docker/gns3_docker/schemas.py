"""JSON schemas (draft-04) of the Docker endpoints: the union of the seed API's fields (`/docker/images`) and the
released 1.5.x API's (`/docker/vms`), so either family's body is valid on either route (api-1.5-release §0)."""

from __future__ import annotations

from gns3core import schemas
from gns3core.schemas import COMMAND_LINE_LENGTH, CONFIG_LENGTH, NAME_LENGTH, PATH_LENGTH, string

NAME = string(NAME_LENGTH, "Container name (also its host name)", min_length=1)
IMAGE_LENGTH = 512  # Docker's own limits: 255 for the repository name, 128 for the tag, and a digest
IMAGE = string(IMAGE_LENGTH, "Docker image reference, e.g. busybox:latest (':latest' is added without a tag)",
               min_length=1)
START_COMMAND = string(COMMAND_LINE_LENGTH, "Command run instead of the image's, split into words as a shell would "
                       "(no shell runs it); empty or null: the image's own", nullable=True)
ENVIRONMENT = string(CONFIG_LENGTH, "KEY=value lines added to the container's environment", nullable=True)
ADAPTERS = {"description": "Number of Ethernet adapters (eth0, eth1, ...); default 0 on /docker/images, "
                           "1 on /docker/vms", "type": ["integer", "null"], "minimum": 0, "maximum": 99}
ADAPTER_TYPE = string(NAME_LENGTH, "Adapter type (informational)", min_length=1)
CONSOLE_PORT = {"description": "Console TCP port (VNC: 5900-6000)", "type": ["integer", "null"], "minimum": 1,
                "maximum": 65535}
CONSOLE_ANY = {"description": "Console TCP port; a string (the seed's meaning) is accepted and ignored",
               "oneOf": [CONSOLE_PORT, string(NAME_LENGTH, min_length=1)]}
CONSOLE_TYPE = {"description": "Console type (null: telnet)", "enum": ["telnet", "vnc", "http", "https", None]}
CONSOLE_RESOLUTION = string(11, "Screen of the VNC console, WIDTHxHEIGHT", nullable=True, pattern="^[0-9]+x[0-9]+$")
CONSOLE_HTTP_PORT = {"description": "TCP port of the web server inside the container (http/https consoles)",
                     "type": "integer", "minimum": 1, "maximum": 65535}
CONSOLE_HTTP_PATH = string(PATH_LENGTH, "Path of the http/https console's URL", min_length=1)
AUX = {"description": "Aux console TCP port (a shell in the container by telnet); always allocated",
       "type": ["integer", "null"], "minimum": 1, "maximum": 65535}

_COMMON = {
    "name": NAME,
    "image": IMAGE,
    "imagename": {**IMAGE, "description": "Seed name of 'image'"},
    "start_command": START_COMMAND,
    "startcmd": {**START_COMMAND, "description": "Seed name of 'start_command'"},
    "environment": ENVIRONMENT,
    "adapters": ADAPTERS,
    "adapter_type": ADAPTER_TYPE,
    "console_type": CONSOLE_TYPE,
    "console_resolution": CONSOLE_RESOLUTION,
    "console_http_port": CONSOLE_HTTP_PORT,
    "console_http_path": CONSOLE_HTTP_PATH,
    "aux": AUX,
}

CREATE = schemas.obj(
    {
        "vm_id": {"description": "Container VM id: a UUID reuses it (an id already open returns that container), "
                                 "an integer (pre-1.3 id) is ignored", "oneOf": [schemas.UUID, {"type": "integer"}]},
        "id": {"description": "Same as a UUID vm_id", **schemas.UUID},
        **_COMMON,
        "console": CONSOLE_ANY,
    },
    required=["name"],
    description="Request validation to create a new Docker container",
)
CREATE["anyOf"] = [{"required": ["image"]}, {"required": ["imagename"]}]

UPDATE = schemas.obj(
    {**_COMMON, "console": CONSOLE_PORT},
    description="Request validation to update a Docker container",
)

_CID = {"description": "Docker container id (the engine's)", "type": "string", "minLength": 12, "maxLength": 64,
        "pattern": "^[a-f0-9]{12,64}$"}

OUTPUT = schemas.obj(
    {
        "name": NAME,
        "vm_id": schemas.UUID,
        "id": schemas.UUID,
        "project_id": schemas.UUID,
        "container_id": _CID,
        "cid": {**_CID, "description": "Seed name of container_id"},
        "image": IMAGE,
        "start_command": {"type": ["string", "null"]},
        "startcmd": {"type": ["string", "null"]},
        "environment": {"type": ["string", "null"]},
        "adapters": {"type": "integer", "minimum": 0, "maximum": 99},
        "adapter_type": {"type": "string"},
        "console": {"type": ["integer", "null"]},
        "console_type": {"enum": ["telnet", "vnc", "http", "https"]},
        "console_resolution": {"type": "string"},
        "console_http_port": {"type": "integer"},
        "console_http_path": {"type": "string"},
        "aux": {"type": ["integer", "null"]},
        "vm_directory": {"type": "string"},
        "status": {"enum": ["started", "stopped", "suspended"]},
    },
    required=["name", "vm_id", "id", "project_id", "image", "start_command", "environment", "adapters", "console",
              "console_type", "console_resolution", "console_http_port", "console_http_path", "aux", "vm_directory",
              "status"],
    description="Docker container instance (both API families' fields)",
)

IMAGES = {
    "$schema": schemas.DRAFT4,
    "description": "Docker images available on the engine, under both API families' keys",
    "type": "array",
    "items": schemas.obj({"image": {"type": "string", "minLength": 1}, "imagename": {"type": "string", "minLength": 1}},
                         required=["image", "imagename"]),
}
