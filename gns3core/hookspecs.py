"""The hooks a plugin may implement. The core's own features use the same hooks (see `gns3core.builtin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gns3core.registry import Registry
    from gns3core.server import Server

PROJECT_NAME = "gns3"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def gns3_register(registry: Registry) -> None:
    """Declare what the plugin adds: emulator kinds (`registry.add_emulator`) and extra routes (`add_routes`)."""


@hookspec
def gns3_server_started(server: Server) -> None:
    """The server is about to accept requests (may return an awaitable); start background work here."""


@hookspec
def gns3_server_stopping(server: Server) -> None:
    """The server is stopping, after every project was closed (may return an awaitable); release what you hold."""
