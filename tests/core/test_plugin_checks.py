"""What a plugin author meets first: each plugin is checked on its own (hook names, @hookimpl, the core version it
declares, the kinds it claims) and a bad one is reported with what to do, while the server and the others run."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest
from test_plugin_host import FakeEntryPoint

from gns3core import __version__, hookimpl, plugins
from gns3core.app import create_app, missing_kind_message
from gns3core.cli import list_plugins
from gns3core.config import Config
from gns3core.registry import Emulator
from gns3core.testing.client import ApiClient

sys.path.insert(0, str(Path(__file__).parent.parent / "example_plugin"))
import gns3_example  # noqa: E402


def plugin_module(name: str, source: str) -> types.ModuleType:
    """A plugin module made from source, as an author would write it in a file."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


MISSPELLED = plugin_module("gns3_misspelled", """
from gns3core import hookimpl

@hookimpl
def gns3_regster(registry):
    raise AssertionError("never called")
""")

UNMARKED = plugin_module("gns3_unmarked", """
def gns3_register(registry):
    raise AssertionError("never called")
""")

WRONG_ARGUMENT = plugin_module("gns3_wrong_argument", """
from gns3core import hookimpl

@hookimpl
def gns3_register(registry, extra_thing):
    raise AssertionError("never called")
""")


class SecondExample:
    """Another distribution claiming the `example` kind, with its own manager."""

    @hookimpl
    def gns3_register(self, registry) -> None:
        registry.add_emulator(Emulator(name="example", manager=gns3_example.ExampleManager,
                                       routes=[], description="the second example"))


def install(monkeypatch, *eps: FakeEntryPoint) -> None:
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda **kw: [ep for ep in eps if kw.get("group") == ep.group])
    monkeypatch.delenv(plugins.ENV_ONLY, raising=False)


def test_misspelled_hook_names_the_closest_valid_one_and_the_rest_loads(caplog) -> None:
    caplog.set_level(logging.ERROR)
    pm, registry, report = plugins.load_plugins([MISSPELLED, gns3_example], use_entry_points=False)
    assert report.failed == {"gns3_misspelled": "hook gns3_regster does not exist; did you mean gns3_register?"}
    assert "gns3_misspelled" not in report.loaded and pm.get_plugin("gns3_misspelled") is None
    assert "example" in registry.emulators
    assert "gns3_regster does not exist; did you mean gns3_register?" in caplog.text


def test_missing_hookimpl_says_why() -> None:
    _pm, registry, report = plugins.load_plugins([UNMARKED], use_entry_points=False)
    reason = report.failed["gns3_unmarked"]
    assert "gns3_register is not marked @hookimpl, so it is never called" in reason
    assert "from gns3core import hookimpl" in reason
    assert registry.emulators == {}


def test_a_plugin_with_no_hook_at_all_is_reported() -> None:
    empty = plugin_module("gns3_empty", "VALUE = 1\n")
    _pm, _registry, report = plugins.load_plugins([empty], use_entry_points=False)
    assert report.failed["gns3_empty"].startswith("implements no hook")


def test_wrong_hook_arguments_are_reported_not_raised() -> None:
    _pm, _registry, report = plugins.load_plugins([WRONG_ARGUMENT, gns3_example], use_entry_points=False)
    assert "extra_thing" in report.failed["gns3_wrong_argument"]
    assert "gns3_example" in report.loaded


async def test_server_starts_with_a_misspelled_plugin(aiohttp_client) -> None:
    app = create_app(Config(files=[]), extra_plugins=[MISSPELLED, gns3_example], use_entry_points=False)
    api = ApiClient(await aiohttp_client(app))
    assert (await api.get("/v1/version")).status == 200


def test_two_distributions_claiming_one_kind(monkeypatch, caplog) -> None:
    caplog.set_level(logging.ERROR)
    # Listed in the "wrong" order on purpose: the outcome follows the names, not the order of discovery.
    install(monkeypatch, FakeEntryPoint("example_two", SecondExample(), dist="gns3-example-two"),
            FakeEntryPoint("example", gns3_example, dist="gns3-example"))
    for _ in range(2):
        _pm, registry, report = plugins.load_plugins()
        assert registry.emulators["example"].plugin == "example"
        reason = report.failed["example_two"]
        assert "emulator kind 'example' is claimed by both example_two (gns3-example-two 9.9)" in reason
        assert "and example (gns3-example 9.9); example serves it. Set GNS3_PLUGINS to choose one." in reason
        assert "gns3-example-two" in caplog.text and "gns3-example 9.9" in caplog.text


@pytest.mark.parametrize("choice", ["example_two", "gns3-example-two", "GNS3_Example_Two"])
def test_gns3_plugins_chooses_between_them(monkeypatch, choice) -> None:
    install(monkeypatch, FakeEntryPoint("example", gns3_example, dist="gns3-example"),
            FakeEntryPoint("example_two", SecondExample(), dist="gns3-example-two"))
    monkeypatch.setenv(plugins.ENV_ONLY, choice)
    _pm, registry, report = plugins.load_plugins()
    assert registry.emulators["example"].description == "the second example"
    assert report.failed == {}


def test_same_entry_point_name_in_two_distributions(monkeypatch) -> None:
    install(monkeypatch, FakeEntryPoint("example", SecondExample(), dist="gns3-example-zz"),
            FakeEntryPoint("example", gns3_example, dist="gns3-example"))
    _pm, registry, report = plugins.load_plugins()
    assert registry.emulators["example"].description != "the second example"
    assert "gns3-example-zz:example" in report.failed
    monkeypatch.setenv(plugins.ENV_ONLY, "gns3-example-zz")
    _pm, registry, _report = plugins.load_plugins()
    assert registry.emulators["example"].description == "the second example"


def test_plugin_under_test_registered_twice_is_mounted_once(monkeypatch) -> None:
    """The plugin a test suite registers in-process is usually installed too: the core mounts it once."""
    install(monkeypatch, FakeEntryPoint("example", gns3_example, dist="gns3-example"))
    _pm, registry, report = plugins.load_plugins([gns3_example], use_entry_points=True)
    assert report.failed == {}
    assert list(registry.emulators) == ["example"]
    assert [r.path for r in registry.routes].count("/v1/projects/{project_id}/example/vms") == 1


def test_a_plugin_given_explicitly_wins_over_an_installed_copy(monkeypatch) -> None:
    install(monkeypatch, FakeEntryPoint("example", gns3_example, dist="gns3-example"))
    _pm, registry, report = plugins.load_plugins([SecondExample()], use_entry_points=True)
    assert registry.emulators["example"].description == "the second example"
    assert "claimed by both example (gns3-example 9.9) and SecondExample (in-process)" in report.failed["example"]


def test_core_version_range_excluding_this_core_is_refused(monkeypatch) -> None:
    future = FakeEntryPoint("example", gns3_example, dist="gns3-example", requires=["gns3core>=99.0,<100"])
    install(monkeypatch, future)
    _pm, registry, report = plugins.load_plugins()
    assert registry.emulators == {}
    assert not future.loaded, "an incompatible plugin is not even imported"
    assert report.failed["example"] == (
        f"gns3-example 9.9 works with gns3core<100,>=99.0, but this server's core is gns3core {__version__}: "
        f"install a release of gns3-example made for gns3core {__version__}")


def test_core_version_range_including_this_core_is_mounted(monkeypatch) -> None:
    major, minor = __version__.split(".")[:2]
    fits = FakeEntryPoint("example", gns3_example, dist="gns3-example",
                          requires=[f"gns3core>={major}.{minor},<{major}.{int(minor) + 1}", "other>=1",
                                    'gns3core[test]<0.0.1; extra == "test"'])
    install(monkeypatch, fits)
    _pm, registry, report = plugins.load_plugins()
    assert report.failed == {} and "example" in registry.emulators


def test_plugin_file_is_loaded(tmp_path) -> None:
    source = Path(gns3_example.__file__).read_text()
    path = tmp_path / "my_example.py"
    path.write_text(source)
    _pm, registry, report = plugins.load_plugins(use_entry_points=False, plugin_files=[path])
    assert report.loaded["my_example"] == f"file {path}"
    assert registry.emulators["example"].plugin == "my_example"


def test_broken_plugin_file_is_reported(tmp_path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import gns3_no_such_module\n")
    _pm, _registry, report = plugins.load_plugins(use_entry_points=False, plugin_files=[path, tmp_path / "none.py"])
    assert report.failed["broken"].endswith("ModuleNotFoundError: No module named 'gns3_no_such_module'")
    assert "not a Python file" in report.failed["none"]


def test_known_kinds_not_installed(monkeypatch, capsys) -> None:
    install(monkeypatch, FakeEntryPoint("example", gns3_example))
    _pm, _registry, report = plugins.load_plugins()
    assert [k.segment for k in report.missing_kinds] == ["vpcs", "qemu", "docker", "dynamips", "iou", "virtualbox",
                                                         "vmware"]
    list_plugins(Config(files=[]))
    out = capsys.readouterr().out.splitlines()
    assert "virtualbox: not installed (VirtualBox: install gns3-virtualbox)" in out
    assert "docker: not installed (Docker: install gns3-docker)" in out


def test_missing_kind_message_paths() -> None:
    missing = {"iou": "IOU support is not installed on this server (install gns3-iou)"}
    assert missing_kind_message("/v1/iou/vms", missing) == missing["iou"]
    assert missing_kind_message("/v1/projects/abc/iou/vms/x/start", missing) == missing["iou"]
    assert missing_kind_message("/v1/projects/abc/vpcs/vms", missing) is None
    assert missing_kind_message("/v1/projects", missing) is None
    assert missing_kind_message("/v1", missing) is None


async def test_routes_of_kinds_not_installed_answer_json_404(api, project) -> None:
    pid = project["project_id"]
    for path, title, dist in ((f"/v1/projects/{pid}/iou/vms", "IOU", "gns3-iou"),
                              (f"/v1/projects/{pid}/virtualbox/vms/x/start", "VirtualBox", "gns3-virtualbox"),
                              ("/v1/vmware/vms", "VMware", "gns3-vmware"),
                              ("/v1/qemu/binaries", "Qemu", "gns3-qemu"),
                              (f"/v1/projects/{pid}/docker/images", "Docker", "gns3-docker")):
        reply = await api.post(path, {"name": "x"})
        assert reply.status == 404, path
        assert reply.headers["Content-Type"] == "application/json"
        assert reply.json == {"status": 404,
                              "message": f"{title} support is not installed on this server (install {dist})"}
    reply = await api.get(f"/v1/projects/{pid}/example/nothing")
    assert reply.status == 404 and reply.json["message"].startswith("No such API endpoint")
