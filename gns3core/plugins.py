"""Plugin discovery: the core's features and every installed emulator plugin, loaded so one broken plugin never
takes the server down.

Each plugin is checked on its own before it is mounted: the core version range its distribution declares, the
names and arguments of its hooks, and the emulator kinds it claims. A plugin that fails a check is reported (with
what to do about it) and skipped; the others are served.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from gns3core import __version__, hookspecs
from gns3core.registry import KindConflict, Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "gns3server.plugins"
ENV_ONLY = "GNS3_PLUGINS"  # comma-separated entry-point or distribution names: load only these
ENV_TRACE = "GNS3_TRACE_HOOKS"  # set to 1 to print every hook call
CORE_DISTRIBUTION = "gns3core"

BUILTIN_MODULES = (
    "gns3core.builtin.version",
    "gns3core.builtin.projects",
    "gns3core.builtin.network",
    "gns3core.builtin.files",
    "gns3core.builtin.notifications",
    "gns3core.builtin.server",
    "gns3core.builtin.openapi",
)
HOOK_NAMES = frozenset(name for name in vars(hookspecs) if name.startswith("gns3_"))


@dataclass(frozen=True)
class KnownKind:
    """An emulator kind of API v1: its URL segment, the name people know it by, and the distribution serving it."""

    segment: str
    title: str
    distribution: str

    @property
    def missing_message(self) -> str:
        return f"{self.title} support is not installed on this server (install {self.distribution})"


KNOWN_KINDS = tuple(KnownKind(segment, title, f"gns3-{segment}") for segment, title in (
    ("vpcs", "VPCS"), ("qemu", "Qemu"), ("docker", "Docker"), ("dynamips", "Dynamips"), ("iou", "IOU"),
    ("virtualbox", "VirtualBox"), ("vmware", "VMware"),
))


@dataclass
class PluginReport:
    """What was loaded, and what failed and why (shown by --list-plugins and logged at start)."""

    loaded: dict[str, str] = field(default_factory=dict)  # name -> "distribution version", "builtin", "file PATH"
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason, with what to do about it
    missing_kinds: list[KnownKind] = field(default_factory=list)  # API v1 kinds no installed plugin serves

    def fail(self, name: str, reason: str) -> None:
        log.error("Plugin %s is not mounted: %s", name, reason)
        self.failed[name] = reason
        self.loaded.pop(name, None)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(ENV_TRACE):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def load_plugins(
    extra: list[Any] | None = None, use_entry_points: bool = True, plugin_files: Iterable[str | Path] = ()
) -> tuple[pluggy.PluginManager, Registry, PluginReport]:
    """Register the builtin features, the installed plugins (entry points), plugin files and `extra` objects.

    Plugins given explicitly (`extra`, `plugin_files`) register their kinds before installed ones, so a plugin
    under development wins over an installed copy of itself; the same object given twice is registered once.
    """
    pm = make_plugin_manager()
    report = PluginReport()
    order: list[str] = []  # the order in which gns3_register is called
    for module_name in BUILTIN_MODULES:
        pm.register(__import__(module_name, fromlist=["_"]), name=module_name)
        report.loaded[module_name] = "builtin"
        order.append(module_name)
    for path in plugin_files:
        name, module = _load_file(path, report)
        if module is not None and _add(pm, module, name, f"file {path}", report):
            order.append(name)
    for plugin in extra or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.is_registered(plugin):
            continue  # e.g. the plugin under test, also installed as an entry point
        if _add(pm, plugin, name, "in-process", report):
            order.append(name)
    if use_entry_points:
        order += _load_entry_points(pm, report)
    registry = Registry()
    for name in order:
        _register_one(pm, name, registry, report)
    report.missing_kinds = [kind for kind in KNOWN_KINDS if not registry.serves(kind.segment)]
    return pm, registry, report


def _load_file(path: str | Path, report: PluginReport) -> tuple[str, ModuleType | None]:
    """`--plugin PATH`: import one module from a file, for development without packaging."""
    path = Path(path)
    name = path.stem
    spec = importlib.util.spec_from_file_location(f"gns3_plugin_file_{name}", path)
    if spec is None or spec.loader is None or not path.is_file():
        report.fail(name, f"cannot load {path}: not a Python file")
        return name, None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(spec.name, None)
        log.debug("Plugin file %s failed", path, exc_info=True)
        report.fail(name, f"{path} could not be imported: {type(exc).__name__}: {exc}")
        return name, None
    return name, module


def _entry_point_origin(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", "entry point"
    return dist.name, f"{dist.name} {dist.version}"


def _selected(ep: Any, only: set[str]) -> bool:
    if not only:
        return True
    dist_name = _entry_point_origin(ep)[0]
    return ep.name in only or (bool(dist_name) and canonicalize_name(dist_name) in only)


def _load_entry_points(pm: pluggy.PluginManager, report: PluginReport) -> list[str]:
    """Load the installed plugins in a fixed order (entry-point name, then distribution name); return their names."""
    only = {n.strip() for n in os.environ.get(ENV_ONLY, "").split(",") if n.strip()}
    only |= {canonicalize_name(n) for n in only}
    found = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if _selected(ep, only)]
    found.sort(key=lambda ep: (ep.name, canonicalize_name(_entry_point_origin(ep)[0])))
    names: list[str] = []
    for ep in found:
        dist_name, origin = _entry_point_origin(ep)
        name = ep.name if not pm.has_plugin(ep.name) and ep.name not in report.failed else f"{dist_name}:{ep.name}"
        problem = core_version_problem(getattr(ep, "dist", None))
        if problem:
            report.fail(name, problem)
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, never fatal
            log.debug("Plugin %s could not be imported", name, exc_info=True)
            report.fail(name, f"could not be loaded: {type(exc).__name__}: {exc}")
            continue
        if pm.is_registered(plugin):
            report.loaded[pm.get_name(plugin)] = origin
            continue
        if _add(pm, plugin, name, origin, report):
            names.append(name)
    return names


def core_version_problem(dist: Any) -> str | None:
    """Why this core cannot mount the distribution (its declared `gns3core` range excludes it), or None."""
    if dist is None:
        return None
    try:
        requirements = dist.requires or []
    except Exception:  # metadata of a broken installation: let the import tell
        return None
    core = Version(__version__)
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != CORE_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if requirement.specifier and not requirement.specifier.contains(core, prereleases=True):
            return (f"{dist.name} {dist.version} works with {CORE_DISTRIBUTION}{requirement.specifier}, but this "
                    f"server's core is {CORE_DISTRIBUTION} {__version__}: install a release of {dist.name} made "
                    f"for {CORE_DISTRIBUTION} {__version__}")
    return None


def hook_problems(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """What is wrong with a plugin's hooks, each with the fix: unknown hook names, hooks without @hookimpl, none."""
    problems: list[str] = []
    marked: list[str] = []
    for attr in dir(plugin):
        if attr.startswith("__"):
            continue
        try:
            opts = pm.parse_hookimpl_opts(plugin, attr)
        except Exception:
            continue
        if opts is None:
            if attr in HOOK_NAMES and callable(getattr(plugin, attr, None)):
                problems.append(f"{attr} is not marked @hookimpl, so it is never called "
                                f"(add `from gns3core import hookimpl` and `@hookimpl` above it)")
            continue
        marked.append(attr)
        if attr not in HOOK_NAMES and not opts.get("optionalhook"):
            close = difflib.get_close_matches(attr, sorted(HOOK_NAMES), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; the hooks are {', '.join(sorted(HOOK_NAMES))}"
            problems.append(f"hook {attr} does not exist{hint}")
    if not marked and not problems:
        problems.append("implements no hook (a function named gns3_register, marked @hookimpl, declares its kinds)")
    return problems


def _add(pm: pluggy.PluginManager, plugin: Any, name: str, origin: str, report: PluginReport) -> bool:
    """Validate one plugin's hooks and register it; a bad plugin is reported and skipped."""
    problems = hook_problems(pm, plugin)
    if problems:
        report.fail(name, "; ".join(problems))
        return False
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:  # wrong hook arguments, a name already taken
        report.fail(name, str(exc))
        return False
    report.loaded[name] = origin
    return True


def _register_one(pm: pluggy.PluginManager, name: str, registry: Registry, report: PluginReport) -> None:
    """Call one plugin's gns3_register; on failure undo what it registered and unregister it."""
    plugin = pm.get_plugin(name)
    impls = [impl for impl in pm.hook.gns3_register.get_hookimpls() if impl.plugin_name == name]
    if plugin is None or not impls:
        return
    before_emulators = dict(registry.emulators)
    before_routes = list(registry.routes)
    registry.current_plugin = name
    try:
        for impl in impls:
            impl.function(registry)
    except Exception as exc:
        registry.emulators = before_emulators
        registry.routes = before_routes
        if isinstance(exc, KindConflict):
            first = exc.first_plugin
            reason = (f"emulator kind {exc.kind!r} is claimed by both {name} ({report.loaded.get(name)}) and "
                      f"{first} ({report.loaded.get(first)}); {first} serves it. Set {ENV_ONLY} to choose one.")
        else:
            log.debug("Plugin %s failed to register", name, exc_info=True)
            reason = f"failed to register: {type(exc).__name__}: {exc}"
        report.fail(name, reason)
        pm.unregister(plugin)
    finally:
        registry.current_plugin = ""
