"""Plugin discovery: the core's features and every installed emulator plugin, loaded so one broken plugin never
takes the server down."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from gns3core import hookspecs
from gns3core.registry import Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "gns3server.plugins"
ENV_ONLY = "GNS3_PLUGINS"  # comma-separated entry-point names: load only these
ENV_TRACE = "GNS3_TRACE_HOOKS"  # set to 1 to print every hook call

BUILTIN_MODULES = (
    "gns3core.builtin.version",
    "gns3core.builtin.projects",
    "gns3core.builtin.network",
    "gns3core.builtin.files",
    "gns3core.builtin.notifications",
    "gns3core.builtin.server",
)


@dataclass
class PluginReport:
    """What was loaded, and what failed and why (shown by --list-plugins and logged at start)."""

    loaded: dict[str, str] = field(default_factory=dict)  # name -> distribution/version or "builtin"
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(ENV_TRACE):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def load_plugins(
    extra: list[Any] | None = None, use_entry_points: bool = True
) -> tuple[pluggy.PluginManager, Registry, PluginReport]:
    """Register the builtin features, the installed plugins (entry points) and `extra` plugin objects."""
    pm = make_plugin_manager()
    report = PluginReport()
    for module_name in BUILTIN_MODULES:
        module = __import__(module_name, fromlist=["_"])
        pm.register(module, name=module_name)
        report.loaded[module_name] = "builtin"
    if use_entry_points:
        _load_entry_points(pm, report)
    for plugin in extra or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name)
        report.loaded[name] = "in-process"
    pm.check_pending()
    registry = Registry()
    for impl in pm.hook.gns3_register.get_hookimpls():
        _register_one(pm, impl, registry, report)
    return pm, registry, report


def _load_entry_points(pm: pluggy.PluginManager, report: PluginReport) -> None:
    only = {n.strip() for n in os.environ.get(ENV_ONLY, "").split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only and ep.name not in only:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin is reported, never fatal
            log.error("Plugin %s could not be loaded: %s", ep.name, exc, exc_info=True)
            report.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        dist = getattr(ep, "dist", None)
        report.loaded[ep.name] = f"{dist.name} {dist.version}" if dist else "entry point"


def _register_one(pm: pluggy.PluginManager, impl: Any, registry: Registry, report: PluginReport) -> None:
    """Call one plugin's gns3_register; on failure undo what it registered and unregister it."""
    name = impl.plugin_name
    before_emulators = dict(registry.emulators)
    before_routes = list(registry.routes)
    registry.current_plugin = name
    try:
        impl.function(registry)
    except Exception as exc:
        log.error("Plugin %s failed to register: %s", name, exc, exc_info=True)
        registry.emulators = before_emulators
        registry.routes = before_routes
        report.failed[name] = f"{type(exc).__name__}: {exc}"
        report.loaded.pop(name, None)
        plugin: ModuleType | None = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
    finally:
        registry.current_plugin = ""
