"""The registry handed to plugins: they declare emulator kinds and routes; the core decides where they go."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gns3core.emulator.manager import VMManager
from gns3core.routing import Route


@dataclass
class Emulator:
    """An emulator kind: its name (the URL segment and project-files folder), manager class and routes."""

    name: str
    manager: type[VMManager]
    routes: list[Route] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    plugin: str = ""


class Registry:
    def __init__(self) -> None:
        self.emulators: dict[str, Emulator] = {}
        self.routes: list[Route] = []
        self.current_plugin = ""

    def add_emulator(self, emulator: Emulator) -> None:
        if emulator.name in self.emulators:
            raise ValueError(f"Emulator kind {emulator.name!r} is already registered")
        emulator.plugin = emulator.plugin or self.current_plugin
        self.emulators[emulator.name] = emulator
        self.add_routes(emulator.routes)

    def add_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            route.plugin = route.plugin or self.current_plugin
            self.routes.append(route)
