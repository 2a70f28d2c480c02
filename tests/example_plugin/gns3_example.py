"""An example emulator plugin that needs no emulator program: its "VM" is a sleeping Python process.

It proves the core's plugin host, base classes and process supervision on a machine with no emulator installed,
and is the smallest complete plugin to read next to docs/plugins.md.
"""

from __future__ import annotations

import sys
from typing import Any

from gns3core import hookimpl, schemas
from gns3core.emulator import BaseVM, ManagedProcess, VMManager, VMRoutes
from gns3core.registry import Emulator

CREATE = schemas.obj(
    {
        "name": schemas.string(schemas.NAME_LENGTH, "VM name", min_length=1),
        "vm_id": {"oneOf": [schemas.UUID, {"type": "integer"}]},
        "console": schemas.CONSOLE_PORT,
        "adapters": {"type": "integer", "minimum": 1, "maximum": 8},
    },
    required=["name"],
)
UPDATE = schemas.obj(
    {"name": schemas.string(schemas.NAME_LENGTH, "VM name", nullable=True, min_length=1),
     "console": schemas.CONSOLE_PORT},
)
OUTPUT = schemas.obj(
    {
        "name": {"type": "string", "minLength": 1},
        "vm_id": schemas.UUID,
        "project_id": schemas.UUID,
        "console": {"type": "integer"},
        "status": {"enum": ["started", "stopped"]},
        "adapters": {"type": "integer"},
    },
    required=["name", "vm_id", "project_id", "console", "status", "adapters"],
)

SLEEPER = "import sys, time; print('example VM running', flush=True); time.sleep(3600)"


class ExampleVM(BaseVM):
    process_name = "Example"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process: ManagedProcess | None = None

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "status": self.status, "adapters": len(self.adapters)}

    async def update_field(self, key: str, value: Any) -> None:
        if key == "adapters":
            from gns3core.emulator import Adapter

            self.adapters = [Adapter() for _ in range(value)]

    async def start(self) -> None:
        if self.running:
            return
        self.process = ManagedProcess(
            "Example", [sys.executable, "-c", SLEEPER], cwd=self.vm_directory,
            log_path=self.vm_directory / "example.log", on_exit=self.process_exited,
        )
        await self.process.start()
        self.set_started()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
        if self.running:
            self.set_stopped()


class ExampleManager(VMManager):
    vm_class = ExampleVM
    supported_nios = frozenset({"nio_udp"})
    legacy_directory = "example-{id}"


@hookimpl
def gns3_register(registry) -> None:
    registry.add_emulator(Emulator(
        name="example",
        manager=ExampleManager,
        vm_routes=VMRoutes(create=CREATE, update=UPDATE, output=OUTPUT, actions=("start", "stop", "reload"),
                           capture=schemas.CAPTURE),
        description="Example emulator with no external program",
    ))
