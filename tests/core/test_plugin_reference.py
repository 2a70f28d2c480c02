"""docs/plugins.md's API reference names every public method and attribute of the classes a plugin builds on, so
a method added to them without documentation fails here (as datasette checks its hooks)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from gns3core.dataplane import Bridge, DataPlane, Endpoint, Impairments, PcapWriter
from gns3core.emulator.links import LinkWiring, nio_endpoint
from gns3core.emulator.manager import ProgramStatus, VMManager
from gns3core.emulator.nio import NIO, NIO_TYPES, nio_from_json
from gns3core.emulator.process import ManagedProcess
from gns3core.emulator.routes import VMRoutes, manager_of, vm_of, vm_routes
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.registry import Emulator, Registry
from gns3core.routing import ApiRequest, Route

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
CLASSES = (BaseVM, Adapter, VMManager, ProgramStatus, ManagedProcess, NIO, LinkWiring, VMRoutes, Route, ApiRequest,
           Emulator, Registry, DataPlane, Bridge, Endpoint, Impairments, PcapWriter)
FUNCTIONS = (vm_routes, vm_of, manager_of, nio_from_json, nio_endpoint)


def reference() -> str:
    text = DOC.read_text()
    start = text.find("## 7. API reference")
    assert start >= 0, "docs/plugins.md has no API reference section"
    return text[start:]


def public_members(cls: type) -> set[str]:
    """Methods, properties and attributes the class itself defines (inherited ones are documented on their base)."""
    names = {name for name in vars(cls) if not name.startswith("_")}
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    instance_attributes = re.findall(r"self\.([a-z][a-z0-9_]*)\s*(?::[^=\n]+)?=", inspect.getsource(cls.__init__)) \
        if cls in (BaseVM, VMManager, Registry) else []
    return names | set(instance_attributes)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_public_member_is_documented(cls: type) -> None:
    text = reference()
    missing = sorted(name for name in public_members(cls) if f"`{cls.__name__}.{name}" not in text)
    assert not missing, f"docs/plugins.md section 7 does not document {cls.__name__}: {missing}"


def test_helpers_and_nio_classes_are_documented() -> None:
    text = reference()
    for function in FUNCTIONS:
        assert f"`{function.__name__}(" in text, function.__name__
    for nio_class in NIO_TYPES.values():
        assert f"`{nio_class.__name__}(" in text, nio_class.__name__


def test_a_missing_member_is_caught() -> None:
    class Grown(BaseVM):
        def brand_new_method(self) -> None:
            """Added without documentation."""

    assert "brand_new_method" in public_members(Grown)
    assert "`Grown.brand_new_method" not in reference()
