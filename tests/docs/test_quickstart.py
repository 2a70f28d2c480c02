"""docs/quickstart.md cannot rot: every `sh` block of it runs, as written and in order, in one bash shell against a
real server (with the real plugins, a private Docker Engine and the Qemu test guest).

Only GNS3 (the server's URL) and DOCKER_HOST (the private engine) differ from a user's shell; the commands
themselves check what they show (`curl --fail-with-body`, `console.py --expect`, `grep -q`), so a step that stops
working fails here with its output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gns3core.testing import require
from gns3core.testing.server import ServerProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart.md"
sys.path.insert(0, str(ROOT / "tests" / "docker"))

from dockerd import dockerd_missing_reason, start_dockerd  # noqa: E402

pytestmark = pytest.mark.timeout(1200)
PROGRAMS = ("curl", "jq", "tshark", "vpcs", "qemu-system-x86_64", "docker", "busybox")


def shell_blocks(markdown: str) -> list[str]:
    """The ```sh blocks of a page, in order (other blocks show output and are not run)."""
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.S | re.M)


def test_blocks_are_found() -> None:
    blocks = shell_blocks(DOC.read_text())
    assert len(blocks) >= 8
    assert blocks[0].startswith("GNS3=${GNS3:-http://127.0.0.1:8000}")
    assert "DELETE $GNS3/v1/projects/$PROJECT" in blocks[-1]
    assert shell_blocks("text\n```sh\necho a\n```\n```\nnot run\n```\n```sh\necho b\n```\n") == ["echo a\n", "echo b\n"]


def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    for program in PROGRAMS:
        require(shutil.which(program) is not None, f"{program} is not installed (bash scripts/test.sh installs it)")
    reason = dockerd_missing_reason()
    require(reason is None, reason or "")
    require((ROOT / ".venv" / "bin" / "python").exists(), "the clone's .venv is missing (bash scripts/test.sh)")
    script = tmp_path / "quickstart.sh"
    script.write_text("\n".join(shell_blocks(DOC.read_text())))
    engine_dir = Path(tempfile.mkdtemp(prefix="gns3-qs-", dir="/tmp"))  # short: UNIX socket paths are limited
    daemon = start_dockerd(engine_dir)
    try:
        # Ports of its own (other test sessions on this machine start servers at the default 2001 / 10000 too).
        base = 27000 + (os.getpid() % 10) * 500
        server_keys = {"console_start_port_range": base, "console_end_port_range": base + 99,
                       "udp_start_port_range": base + 100, "udp_end_port_range": base + 499}
        config = write_config(tmp_path / "server.conf", tmp_path, Server=server_keys,
                              Docker={"docker_host": daemon.docker_host})
        with ServerProcess(config, args=("--local",), log=tmp_path / "server.log") as server:
            env = {**os.environ, "GNS3": server.url, "DOCKER_HOST": daemon.docker_host}
            env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
            run = subprocess.run(["bash", "-xeuo", "pipefail", str(script)], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=1000, check=False)
            detail = (f"{run.stdout[-6000:]}\n--- stderr ---\n{run.stderr[-3000:]}\n"
                      f"--- server ---\n{server.output()[-3000:]}")
            assert run.returncode == 0, detail
            assert "10.0.0.2 icmp_seq=" in run.stdout and "10.0.1.20 icmp_seq=" in run.stdout, detail
            status, projects = server.request("GET", "/v1/projects")
            assert status == 200 and projects == [], projects
        left = [c for c in daemon.containers() if "org.gns3.vm_id" in (c.get("Labels") or {})]
        assert left == [], "the clean-up left containers behind"
    finally:
        daemon.stop()
        shutil.rmtree(engine_dir, ignore_errors=True)
