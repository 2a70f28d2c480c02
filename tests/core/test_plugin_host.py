"""The plugin host: broken plugins are skipped and logged, GNS3_PLUGINS restricts entry points, hooks are documented."""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gns3core import hookimpl, hookspecs, plugins
from gns3core.cli import list_plugins
from gns3core.config import Config
from gns3core.routing import Route

sys.path.insert(0, str(Path(__file__).parent.parent / "example_plugin"))
import gns3_example  # noqa: E402


async def _ok(request):
    return {"ok": True}


class RaisingPlugin:
    """Registers a route, then fails: nothing of it may stay behind."""

    @hookimpl
    def gns3_register(self, registry) -> None:
        registry.add_routes([Route("GET", "/v1/broken/route", _ok, 200)])
        raise RuntimeError("register exploded")


class ExtraRoutePlugin:
    @hookimpl
    def gns3_register(self, registry) -> None:
        registry.add_routes([Route("GET", "/v1/extra", _ok, 200)])


class FakeEntryPoint:
    """What importlib.metadata hands out, with a load() we control."""

    def __init__(self, name: str, target=None, error: Exception | None = None, dist: str | None = None,
                 requires: list[str] | None = None) -> None:
        self.name = name
        self.group = plugins.ENTRY_POINT_GROUP
        self.target = target
        self.error = error
        self.loaded = False
        self.dist = SimpleNamespace(name=dist or f"gns3-{name}", version="9.9", requires=requires)

    def load(self):
        self.loaded = True
        if self.error is not None:
            raise self.error
        return self.target


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps = [
        FakeEntryPoint("example", gns3_example),
        FakeEntryPoint("missing", error=ModuleNotFoundError("No module named 'gns3_missing'")),
        FakeEntryPoint("extra", ExtraRoutePlugin()),
    ]
    calls = []

    def entry_points(**kwargs):
        calls.append(kwargs)
        return [ep for ep in eps if kwargs.get("group") == ep.group]

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv(plugins.ENV_ONLY, raising=False)
    return eps, calls


def route_paths(registry) -> set[str]:
    return {r.path for r in registry.routes}


def test_plugin_raising_in_register_is_skipped(caplog) -> None:
    caplog.set_level(logging.ERROR)
    pm, registry, report = plugins.load_plugins([gns3_example, RaisingPlugin()], use_entry_points=False)
    assert "example" in registry.emulators
    assert "/v1/broken/route" not in route_paths(registry)
    assert "/v1/version" in route_paths(registry)
    assert report.failed == {"RaisingPlugin": "failed to register: RuntimeError: register exploded"}
    assert "gns3_example" in report.loaded and "RaisingPlugin" not in report.loaded
    assert "register exploded" in caplog.text
    assert pm.get_plugin("RaisingPlugin") is None


def test_entry_points_loaded_and_broken_one_skipped(fake_entry_points, caplog) -> None:
    eps, calls = fake_entry_points
    caplog.set_level(logging.ERROR)
    _pm, registry, report = plugins.load_plugins(use_entry_points=True)
    assert calls == [{"group": "gns3server.plugins"}]
    assert "example" in registry.emulators
    assert "/v1/extra" in route_paths(registry)
    assert report.loaded["example"] == "gns3-example 9.9"
    assert report.failed == {"missing": "could not be loaded: ModuleNotFoundError: No module named 'gns3_missing'"}
    assert "Plugin missing is not mounted: could not be loaded" in caplog.text


def test_env_var_restricts_entry_points(fake_entry_points, monkeypatch) -> None:
    eps, _ = fake_entry_points
    monkeypatch.setenv(plugins.ENV_ONLY, " extra , nothing-else")
    _pm, registry, report = plugins.load_plugins(use_entry_points=True)
    assert [ep.loaded for ep in eps] == [False, False, True]
    assert registry.emulators == {}
    assert "/v1/extra" in route_paths(registry)
    assert report.failed == {}


def test_entry_points_off(fake_entry_points) -> None:
    eps, calls = fake_entry_points
    _pm, registry, _report = plugins.load_plugins(use_entry_points=False)
    assert calls == [] and registry.emulators == {}


def test_every_hookspec_has_a_docstring() -> None:
    specs = [obj for name, obj in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("gns3_")]
    assert {f.__name__ for f in specs} >= {"gns3_register", "gns3_server_started", "gns3_server_stopping"}
    for spec in specs:
        assert spec.__doc__ and len(spec.__doc__.strip()) > 20, spec.__name__


def test_list_plugins_output(fake_entry_points, capsys) -> None:
    code = list_plugins(Config(files=[]))
    out = capsys.readouterr().out
    assert "example (gns3-example 9.9): emulator example: program found (no external program needed)" in out
    assert "extra (gns3-extra 9.9): no emulator kind (it adds routes only)" in out
    assert "missing: FAILED to load: could not be loaded: ModuleNotFoundError" in out
    assert "iou: not installed (IOU: install gns3-iou)" in out
    assert "vmware: not installed (VMware: install gns3-vmware)" in out
    assert code == 1


def test_list_plugins_with_nothing_installed(monkeypatch, capsys) -> None:
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda **kw: [])
    assert list_plugins(Config(files=[])) == 0
    assert "No emulator plugin" in capsys.readouterr().out


class TestServerWithABrokenPlugin:
    @pytest.fixture
    def gns3_plugins(self):
        return [RaisingPlugin(), gns3_example]

    async def test_server_still_serves(self, api, gns3_server) -> None:
        assert gns3_server.plugin_report.failed["RaisingPlugin"].startswith("failed to register: RuntimeError")
        assert (await api.get("/v1/version")).status == 200
        assert (await api.get("/v1/broken/route")).status == 404
        project = (await api.post("/v1/projects", {"name": "p"})).json
        assert (await api.post(f"/v1/projects/{project['project_id']}/example/vms", {"name": "v"})).status == 201
