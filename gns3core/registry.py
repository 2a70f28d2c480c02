"""The registry handed to plugins: they declare emulator kinds and routes; the core decides where they go."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gns3core.emulator.manager import VMManager
from gns3core.emulator.routes import VMRoutes
from gns3core.routing import Route


@dataclass
class Emulator:
    """An emulator kind: its name (the URL segment and project-files folder), manager class and routes.

    `vm_routes` declares the kind's standard endpoints, built for `name` (so the name is written once); `routes`
    are any others. After construction `routes` holds both.
    """

    name: str
    manager: type[VMManager]
    routes: list[Route] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    plugin: str = ""
    vm_routes: VMRoutes | None = None

    def __post_init__(self) -> None:
        if self.vm_routes is not None:
            self.routes = self.vm_routes.build(self.name) + list(self.routes)


class KindConflict(ValueError):
    """A second plugin claims an emulator kind that an earlier one registered."""

    def __init__(self, kind: str, first_plugin: str) -> None:
        super().__init__(f"Emulator kind {kind!r} is already registered by plugin {first_plugin}")
        self.kind = kind
        self.first_plugin = first_plugin


class Registry:
    def __init__(self) -> None:
        self.emulators: dict[str, Emulator] = {}
        self.routes: list[Route] = []
        self.current_plugin = ""

    def add_emulator(self, emulator: Emulator) -> None:
        if emulator.name in self.emulators:
            raise KindConflict(emulator.name, self.emulators[emulator.name].plugin)
        emulator.plugin = emulator.plugin or self.current_plugin
        self.emulators[emulator.name] = emulator
        self.add_routes(emulator.routes)

    def add_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            route.plugin = route.plugin or self.current_plugin
            self.routes.append(route)

    def serves(self, segment: str) -> bool:
        """Whether some registered kind answers under `/v1/<segment>/` or `/v1/projects/{project_id}/<segment>/`."""
        if segment in self.emulators:
            return True
        prefixes = (f"/v1/{segment}/", f"/v1/projects/{{project_id}}/{segment}/")
        return any(route.path.startswith(prefixes) for route in self.routes)
