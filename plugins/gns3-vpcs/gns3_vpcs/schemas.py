"""JSON schemas of the VPCS endpoints (API v1, draft-04), field for field as the reference declared them."""

from __future__ import annotations

from gns3core import schemas

_SCRIPT = schemas.string(schemas.CONFIG_LENGTH, "Content of the VPCS startup script", nullable=True)

CREATE = schemas.obj(
    {
        "name": schemas.string(schemas.NAME_LENGTH, "VPCS VM name", min_length=1),
        "vm_id": {"description": "VPCS VM identifier (a UUID, or the integer id of a pre-1.3 project)",
                  "oneOf": [schemas.UUID, {"type": "integer"}]},
        "console": schemas.CONSOLE_PORT,
        "startup_script": _SCRIPT,
    },
    required=["name"], description="Request validation to create a new VPCS instance",
)

UPDATE = schemas.obj(
    {
        "name": schemas.string(schemas.NAME_LENGTH, "VPCS VM name", nullable=True, min_length=1),
        "console": schemas.CONSOLE_PORT,
        "startup_script": _SCRIPT,
    },
    description="Request validation to update a VPCS instance",
)

OBJECT = schemas.obj(
    {
        "name": {"description": "VPCS VM name", "type": "string", "minLength": 1},
        "vm_id": {"description": "VPCS VM UUID", **schemas.UUID},
        "vm_directory": {"description": "Working directory of the VM", "type": "string"},
        "status": {"description": "VM status", "enum": ["started", "stopped"]},
        "console": {"description": "console TCP port", "minimum": 1, "maximum": 65535, "type": "integer"},
        "project_id": {"description": "Project UUID", **schemas.UUID},
        "startup_script": _SCRIPT,
        "startup_script_path": {"description": "Path of the VPCS startup script relative to the VM directory",
                                "type": ["string", "null"]},
        "command_line": schemas.COMMAND_LINE,
    },
    required=["name", "vm_id", "status", "console", "project_id", "startup_script_path", "command_line"],
    description="VPCS instance",
)
