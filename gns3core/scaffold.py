"""`gns3server new-plugin NAME DIR`: write a plugin distribution that installs, mounts and passes its tests as written.

The files are the smallest complete plugin: one kind whose VM runs a placeholder program (a sleeping Python
process) under the core's process supervision, the standard routes, schemas built from the core's, and a test
suite running the conformance kit with the start/stop section. The author replaces the placeholder program and
grows the schemas from there.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from packaging.version import Version

from gns3core import __version__

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
TAKEN = {"vpcs", "qemu", "docker", "dynamips", "iou", "virtualbox", "vmware", "projects", "version", "config",
         "server", "files", "interfaces", "ports", "notifications", "settings", "shutdown", "debug"}


class ScaffoldError(Exception):
    """The name or directory cannot be used; the message says why."""


def core_requirement() -> str:
    """The core versions a new plugin declares: this core's minor series (0.x cores change their API per minor)."""
    version = Version(__version__)
    if version.major == 0:
        return f"gns3core>={version.major}.{version.minor},<{version.major}.{version.minor + 1}"
    return f"gns3core>={version.major}.{version.minor},<{version.major + 1}"


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def files_for(name: str) -> dict[str, str]:
    """Relative path -> content of the distribution for kind `name`."""
    values = {"name": name, "package": f"gns3_{name}", "dist": f"gns3-{name.replace('_', '-')}",
              "title": name.replace("_", " ").title(), "title_class": _class_name(name), "core": core_requirement()}
    return {path.format(**values): text.format(**values) for path, text in TEMPLATES.items()}


def write_plugin(name: str, directory: Path) -> Path:
    """Write the distribution into `directory` (which must not exist, or be empty); returns its path."""
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} cannot be a kind name: use lower case letters, digits and underscores, "
                            "starting with a letter (at most 31 characters)")
    if name in TAKEN:
        raise ScaffoldError(f"{name!r} is already an API v1 kind or a core URL segment; choose another name")
    directory = directory.resolve()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ScaffoldError(f"{directory} already exists and is not an empty directory")
    for relative, content in files_for(name).items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return directory


TEMPLATES: dict[str, str] = {}

TEMPLATES["pyproject.toml"] = '''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{title} nodes for a GNS3 API v1 server (gns3core plugin)"
readme = "README.md"
requires-python = ">=3.11"
# The core versions this plugin is written for: the server refuses to mount it under any other.
dependencies = ["{core}"]

[project.optional-dependencies]
test = ["gns3core[test]"]

[project.entry-points."gns3server.plugins"]
{name} = "{package}.plugin"

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
testpaths = ["tests"]
'''

TEMPLATES["README.md"] = '''\
# {dist}

{title} nodes for a server built on gns3core (GNS3 API v1): the routes
`/v1/projects/{{project_id}}/{name}/vms/...` (create, get, update, delete, start, stop, reload, NIOs).

Install it into the server's Python, after the core:

    pip install -e .
    gns3server --list-plugins        # {name} ({dist} 0.1.0): emulator {name}: program found ...

Run its tests (the core's conformance kit, with the start/stop section):

    pip install -e ".[test]"
    python -m pytest

Today its VM runs a placeholder program; `{package}/vm.py` says where your emulator's command line goes.
'''

TEMPLATES["{package}/__init__.py"] = '''\
"""{title} emulator plugin for gns3core."""
'''

TEMPLATES["{package}/plugin.py"] = '''\
"""Entry point (group `gns3server.plugins`, name `{name}`): declares the `{name}` kind and its routes."""

from __future__ import annotations

from gns3core import hookimpl
from gns3core.emulator import VMRoutes
from gns3core.registry import Emulator, Registry

from {package} import schemas
from {package}.manager import {title_class}Manager


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_emulator(Emulator(
        name="{name}",
        manager={title_class}Manager,
        vm_routes=VMRoutes(create=schemas.CREATE, update=schemas.UPDATE, output=schemas.OBJECT,
                           actions=("start", "stop", "reload")),
        description="{title} nodes",
    ))
'''

TEMPLATES["{package}/schemas.py"] = '''\
"""JSON schemas (draft-04) of the `{name}` requests and VM object; every string has a maxLength."""

from __future__ import annotations

from gns3core import schemas

CREATE = schemas.obj(
    {{
        "name": schemas.string(schemas.NAME_LENGTH, "VM name", min_length=1),
        "vm_id": schemas.VM_ID_CREATE,
        "console": schemas.CONSOLE_PORT,
    }},
    required=["name"],
    description="Request validation to create a new {name} VM",
)

UPDATE = schemas.obj(
    {{
        "name": schemas.string(schemas.NAME_LENGTH, "VM name", nullable=True, min_length=1),
        "console": schemas.CONSOLE_PORT,
    }},
    description="Request validation to update a {name} VM",
)

OBJECT = schemas.vm_object({{}}, description="{name} VM instance")
'''

TEMPLATES["{package}/manager.py"] = '''\
"""The `{name}` manager: which VM class, which NIO types, and whether the emulator program is here."""

from __future__ import annotations

import sys

from gns3core.emulator import VMManager
from gns3core.emulator.manager import ProgramStatus

from {package}.vm import {title_class}VM


class {title_class}Manager(VMManager):
    vm_class = {title_class}VM
    supported_nios = frozenset({{"nio_udp"}})

    @classmethod
    def probe(cls, config) -> ProgramStatus:
        """What `gns3server --list-plugins` prints; look for your emulator's program here."""
        return ProgramStatus(found=True, path=sys.executable, message="placeholder program")
'''

TEMPLATES["{package}/vm.py"] = '''\
"""One `{name}` VM: the program it runs, supervised by the core (crash reports, stop on server exit)."""

from __future__ import annotations

import sys

from gns3core.emulator import BaseVM, ManagedProcess

# The placeholder emulator: replace this command line with your emulator's (no shell: a list of arguments).
PLACEHOLDER = [sys.executable, "-c", "import time; print('{name} VM running', flush=True); time.sleep(86400)"]


class {title_class}VM(BaseVM):
    process_name = "{title}"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.process: ManagedProcess | None = None

    def command_line(self) -> list[str]:
        return list(PLACEHOLDER)

    async def start(self) -> None:
        if self.running:
            return
        self.process = ManagedProcess("{title}", self.command_line(), cwd=self.vm_directory,
                                      log_path=self.vm_directory / "{name}.log", on_exit=self.process_exited)
        await self.process.start()
        self.set_started()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
            self.process = None
        if self.running:
            self.set_stopped()
'''

TEMPLATES["tests/conftest.py"] = '''\
"""The core's pytest plugin (fixtures gns3_api, gns3_project, gns3_server, ...) with this plugin mounted."""

import pytest

import {package}.plugin

pytest_plugins = ["gns3core.testing.fixtures"]


@pytest.fixture
def gns3_plugins():
    return [{package}.plugin]
'''

TEMPLATES["tests/test_conformance.py"] = '''\
"""The core's conformance kit against the `{name}` kind, with the start/stop section."""

from gns3core.testing.conformance import EmulatorConformance, StartStopSection


class Test{title_class}Conformance(EmulatorConformance, StartStopSection):
    emulator = "{name}"
    create_body = {{"name": "node-1"}}
    update_body = {{"name": "node-2"}}
'''
