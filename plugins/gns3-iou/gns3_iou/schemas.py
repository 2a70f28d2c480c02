"""JSON schemas of the IOU endpoints (API v1, draft-04), with the released 1.5.x additions (`command_line`)."""

from __future__ import annotations

from gns3core import schemas
from gns3core.schemas import CONFIG_LENGTH, FILE_NAME_LENGTH, NAME_LENGTH, PATH_LENGTH, string

MAX_ADAPTERS = 16  # bays 0-15: the netio header has four bits for the bay

_ADAPTERS = {"type": "integer", "minimum": 0, "maximum": MAX_ADAPTERS}
_ADAPTERS_OR_NULL = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_ADAPTERS}
_RAM = {"description": "RAM in MB (used when use_default_iou_values is false)", "type": ["integer", "null"],
        "minimum": 1, "maximum": 65535}
_NVRAM = {"description": "NVRAM in KB (used when use_default_iou_values is false)", "type": ["integer", "null"],
          "minimum": 8, "maximum": 1024}
_CONFIG = string(CONFIG_LENGTH, nullable=True)
_NAME = string(NAME_LENGTH, "IOU VM name", min_length=1)

_COMMON = {
    "console": schemas.CONSOLE_PORT,
    "path": string(PATH_LENGTH, "Path of the IOU image (relative to the images directory's IOU folder)"),
    "md5sum": string(NAME_LENGTH, "md5 of the image (ignored)", nullable=True),
    "serial_adapters": {"description": "How many serial adapters (4 ports each)", **_ADAPTERS},
    "ethernet_adapters": {"description": "How many Ethernet adapters (4 ports each)", **_ADAPTERS},
    "ram": _RAM,
    "nvram": _NVRAM,
    "l1_keepalives": {"description": "Layer 1 keepalive messages (-l)", "type": ["boolean", "null"]},
    "use_default_iou_values": {"description": "Let the image choose its RAM and NVRAM", "type": ["boolean", "null"]},
    "startup_config": string(PATH_LENGTH, "Startup-config file name (ignored)", nullable=True),
    "private_config": string(PATH_LENGTH, "Private-config file name (ignored)", nullable=True),
    "startup_config_content": {**_CONFIG, "description": "Startup-config text (%h is replaced by the name)"},
    "private_config_content": {**_CONFIG, "description": "Private-config text"},
    "iourc_content": {**_CONFIG, "description": "Licence file (iourc) content, used when no other iourc is found"},
}

CREATE = schemas.obj(
    {"name": _NAME, "vm_id": schemas.VM_ID_CREATE, **_COMMON},
    required=["name", "path"], description="Request validation to create a new IOU instance",
)

UPDATE = schemas.obj(
    {
        "name": string(NAME_LENGTH, "IOU VM name", nullable=True, min_length=1),
        **_COMMON,
        "path": string(PATH_LENGTH, "Path of the IOU image", nullable=True),
        "serial_adapters": {"description": "How many serial adapters (4 ports each)", **_ADAPTERS_OR_NULL},
        "ethernet_adapters": {"description": "How many Ethernet adapters (4 ports each)", **_ADAPTERS_OR_NULL},
    },
    description="Request validation to update an IOU instance",
)

# The start body is open (API v1 declares no additionalProperties); only iourc_content is used. Strings of other keys
# still have a length limit.
START = {
    "$schema": schemas.DRAFT4,
    "description": "Request validation to start an IOU instance",
    "type": ["object", "null"],
    "properties": {"iourc_content": {**_CONFIG, "description": "Licence file (iourc) content to use"}},
    "additionalProperties": {"maxLength": CONFIG_LENGTH},
}

OBJECT = schemas.vm_object(
    {
        "name": {"description": "IOU VM name", "type": "string", "minLength": 1},
        "vm_directory": {"description": "Working directory of the VM", "type": "string"},
        "console": {"description": "console TCP port", "type": "integer", "minimum": 1, "maximum": 65535},
        "path": {"description": "Path of the IOU image", "type": "string"},
        "md5sum": {"description": "md5 of the image", "type": ["string", "null"]},
        "serial_adapters": {"description": "How many serial adapters", "type": "integer"},
        "ethernet_adapters": {"description": "How many Ethernet adapters", "type": "integer"},
        "ram": {"description": "RAM in MB", "type": "integer"},
        "nvram": {"description": "NVRAM in KB", "type": "integer"},
        "l1_keepalives": {"description": "Layer 1 keepalive messages", "type": "boolean"},
        "startup_config": {"description": "Startup-config file of the VM, relative to its directory",
                           "type": ["string", "null"]},
        "private_config": {"description": "Private-config file of the VM, relative to its directory",
                           "type": ["string", "null"]},
        "use_default_iou_values": {"description": "Let the image choose its RAM and NVRAM",
                                   "type": ["boolean", "null"]},
        "iourc_path": {"description": "The iourc file a start would use", "type": ["string", "null"]},
        "command_line": schemas.COMMAND_LINE,
    },
    required=["console", "path", "md5sum", "serial_adapters", "ethernet_adapters", "ram", "nvram", "l1_keepalives",
              "startup_config", "private_config", "use_default_iou_values", "command_line"],
    description="IOU instance",
)

CONFIGS = schemas.obj(
    {
        "startup_config_content": {"description": "Startup-config text", "type": ["string", "null"], "minLength": 1},
        "private_config_content": {"description": "Private-config text", "type": ["string", "null"], "minLength": 1},
    },
    description="The configs of an IOU instance",
)

IMAGE_LIST = {
    "$schema": schemas.DRAFT4,
    "description": "IOU images in the images directory",
    "type": "array",
    "items": schemas.obj(
        {"filename": {"type": "string", "minLength": 1}, "path": {"type": "string", "minLength": 1}},
        required=["filename", "path"],
    ),
}

UPLOAD_NAME_LENGTH = FILE_NAME_LENGTH
