"""A container's settings as the two API families send them, reduced to one form (pure functions, no I/O).

The seed API (`/docker/images`) names the image `imagename` and the command `startcmd`; the released 1.5.x API
(`/docker/vms`) names them `image` and `start_command`. Both names are accepted on both routes; the released name
wins when a request has both.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from gns3core.errors import BadRequest

CONSOLE_TYPES = ("telnet", "vnc", "http", "https")
DEFAULT_RESOLUTION = "1024x768"
DEFAULT_HTTP_PORT = 80
DEFAULT_HTTP_PATH = "/"
MAX_SCREEN_SIDE = 8192  # Xvfb allocates the whole framebuffer up front

RENAMED = {"imagename": "image", "startcmd": "start_command"}


def release_names(body: dict[str, Any]) -> dict[str, Any]:
    """The body with seed field names replaced by the released ones (a released name already there wins)."""
    result = {}
    for key, value in body.items():
        name = RENAMED.get(key, key)
        if name != key and name in body:
            continue
        result[name] = value
    return result


def normalise_image(image: str) -> str:
    """`:latest` added when the reference names no tag or digest (`host:5000/repo` has no tag)."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return f"{image}:latest"


def normalise_command(command: str | None) -> str | None:
    """Stripped; an empty command means the image's own."""
    if command is None:
        return None
    return command.strip() or None


def split_command(command: str) -> list[str]:
    """The command's words, split as a POSIX shell would split them (no shell ever runs it); 400 when it
    cannot be split (an unclosed quote)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise BadRequest(f"Start command {command[:200]!r} cannot be split into words: {exc}") from None
    if not words:
        raise BadRequest("Start command is empty")
    return words


def environment_lines(environment: str | None) -> list[str]:
    """`KEY=value` lines of the environment field, each stripped, empty lines left out."""
    if not environment:
        return []
    return [line.strip() for line in environment.splitlines() if line.strip()]


def check_resolution(resolution: str) -> str:
    match = re.fullmatch(r"([0-9]+)x([0-9]+)", resolution)
    if match is None or not all(1 <= int(side) <= MAX_SCREEN_SIDE for side in match.groups()):
        raise BadRequest(f"Console resolution {resolution!r} is not WIDTHxHEIGHT with sides of 1 to "
                         f"{MAX_SCREEN_SIDE} pixels")
    return resolution


def hostname_of(name: str) -> str:
    """A valid host name from a node name (letters, digits, dashes; at most 63 characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63].strip("-")
    return cleaned or "gns3"
