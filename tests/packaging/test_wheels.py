"""The distributions as a user installs them: every wheel built by `pip wheel`, then the core and gns3-vpcs alone
installed from those wheels into a fresh virtual environment, where the conformance kit and a real VPCS test run.

The same environment shows that pytest works without the core's test extra (the core's pytest plugin is opt-in) and
that a plugin written by `gns3server new-plugin` passes its own tests once installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gns3core import __version__
from gns3core.testing import require

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
pytestmark = pytest.mark.timeout(1200)


def run(argv: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a command; fail with its output when it fails."""
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{output}"
    return result


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user of that venv: its bin first on PATH, nothing of this test run's Python leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with a build backend, so every distribution is built in one pip run (not one isolated env each)."""
    path = tmp_path_factory.mktemp("builder")
    run([sys.executable, "-m", "venv", path])
    run([path / "bin/python", "-m", "pip", "install", "-q", "setuptools>=70.1"])
    return path / "bin/python"


def build_wheels(builder: Path, out: Path, *sources: str | Path, deps: bool = True) -> None:
    run([builder, "-m", "pip", "wheel", "-q", "--no-build-isolation", *([] if deps else ["--no-deps"]),
         "--wheel-dir", out, *sources])


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, builder: Path) -> Path:
    """Every distribution of the repository as a wheel, with the wheels of their dependencies (test extra too)."""
    out = tmp_path_factory.mktemp("wheels")
    build_wheels(builder, out, f"{ROOT}[test]", *PLUGINS)
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A fresh virtual environment holding the core (no test extra) and pytest, installed from the wheels only."""
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", path])
    run([path / "bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse, "gns3core",
         "pytest"])
    return path


def installed(venv: Path, wheelhouse: Path, *requirements: str) -> None:
    run([venv / "bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse, *requirements])


def test_every_distribution_has_a_wheel(wheelhouse: Path) -> None:
    names = {p.name for p in wheelhouse.glob("*.whl")}
    assert f"gns3core-{__version__}-py3-none-any.whl" in names
    for plugin in PLUGINS:
        prefix = plugin.name.replace("-", "_") + "-"
        assert any(n.startswith(prefix) for n in names), f"no wheel for {plugin.name}: {sorted(names)}"


def test_pytest_without_the_test_extra(venv: Path, tmp_path: Path) -> None:
    """pytest in an environment with the core but not its test extra: it runs, and no gns3 fixture is pushed in."""
    env = clean_env(venv)
    probe = run([venv / "bin/python", "-c", "import importlib.util as u; print(u.find_spec('pytest_asyncio'))"],
                env=env)
    assert probe.stdout.strip() == "None", "the test extra must not be installed in this environment"
    (tmp_path / "test_plain.py").write_text("def test_arithmetic(request):\n"
                                            "    assert 'api' not in request.fixturenames\n"
                                            "    assert 1 + 1 == 2\n")
    result = run([venv / "bin/pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"], cwd=tmp_path, env=env)
    assert "1 passed" in result.stdout
    assert "Error while loading plugin" not in result.stdout + result.stderr
    fixtures = run([venv / "bin/pytest", "--fixtures", "-p", "no:cacheprovider", "test_plain.py"], cwd=tmp_path,
                   env=env)
    assert "gns3_" not in fixtures.stdout and "project" not in fixtures.stdout.split()
    # A suite that opts in without the extra is told what to install.
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["gns3core.testing.fixtures"]\n')
    opted = subprocess.run([str(venv / "bin/pytest"), "-q", "-p", "no:cacheprovider", "test_plain.py"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300, check=False)
    assert opted.returncode != 0
    assert "pip install 'gns3core[test]'" in opted.stdout + opted.stderr


def test_core_and_vpcs_alone_from_wheels(venv: Path, wheelhouse: Path, tmp_path: Path) -> None:
    """The VPCS-only install: the core with its test extra and gns3-vpcs, nothing else, from the wheels."""
    require(shutil.which("vpcs") is not None, "vpcs is not installed (apt-get install vpcs)")
    installed(venv, wheelhouse, "gns3core[test]", "gns3-vpcs")
    env = clean_env(venv)
    where = run([venv / "bin/python", "-c", "import gns3core, gns3_vpcs; print(gns3core.__file__, gns3_vpcs.__file__)"],
                cwd=tmp_path, env=env)
    assert all(path.startswith(str(venv)) for path in where.stdout.split()), where.stdout
    listing = run([venv / "bin/gns3server", "--list-plugins"], cwd=tmp_path, env={**env, "GNS3_PLUGINS": ""})
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("vpcs (gns3-vpcs 0.1.0): emulator vpcs: program found"), listing.stdout
    assert "qemu: not installed (Qemu: install gns3-qemu)" in lines
    assert "docker: not installed (Docker: install gns3-docker)" in lines
    tests = ROOT / "tests" / "vpcs"
    result = run([venv / "bin/pytest", "-q", "-p", "no:cacheprovider", "-c", ROOT / "pyproject.toml",
                  "--rootdir", ROOT, tests / "test_vpcs_conformance.py",
                  f"{tests / 'test_lifecycle.py'}::test_start_console_stop"], cwd=tmp_path, env=env)
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]


def test_scaffolded_plugin_passes_its_tests_once_installed(venv: Path, wheelhouse: Path, builder: Path,
                                                          tmp_path: Path) -> None:
    """`gns3server new-plugin` writes a distribution that builds, installs and passes its conformance tests as is."""
    installed(venv, wheelhouse, "gns3core[test]")
    env = clean_env(venv)
    source = tmp_path / "gns3-lab-demo"
    run([venv / "bin/gns3server", "new-plugin", "lab_demo", source], env=env)
    build_wheels(builder, wheelhouse, source, deps=False)
    installed(venv, wheelhouse, "gns3-lab-demo")
    listing = run([venv / "bin/gns3server", "--list-plugins"], cwd=tmp_path, env={**env, "GNS3_PLUGINS": "lab_demo"})
    assert listing.stdout.startswith("lab_demo (gns3-lab-demo 0.1.0): emulator lab_demo: program found")
    result = run([venv / "bin/pytest", "-q", "-p", "no:cacheprovider"], cwd=source, env=env)
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout[-2000:]
    result = run([venv / "bin/python", "-c", "import gns3_lab_demo; print(gns3_lab_demo.__file__)"], cwd=tmp_path,
                 env=env)
    assert result.stdout.startswith(str(venv))
