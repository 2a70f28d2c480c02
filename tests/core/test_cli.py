"""The command line, end to end: real `gns3server` processes answering HTTP, and stopping without orphans.

The example plugin is made discoverable the way an installed plugin is: a dist-info folder with an entry point, on
PYTHONPATH, and GNS3_PLUGINS=example so that other plugins installed on this machine stay out of the way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

import gns3core
from gns3core.testing.ports import free_tcp_port
from gns3core.testing.server import ServerProcess

EXAMPLE_DIR = Path(__file__).parent.parent / "example_plugin"


def gns3server() -> list[str]:
    exe = shutil.which("gns3server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("gns3server is not on PATH: the package is not installed")
        pytest.skip("gns3server is not on PATH (pip install -e . first)")
    return [exe]


def http(port: int, method: str, path: str, body: object = None, timeout: float = 5.0) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which the example plugin is an installed entry point (and the only one loaded)."""
    site = tmp_path / "site"
    dist = site / "gns3_example_plugin-0.0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gns3-example-plugin\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[gns3server.plugins]\nexample = gns3_example\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GNS3_PLUGINS"] = "example"
    return env


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gns3_server.conf"
    path.write_text(f"[Server]\nprojects_path = {tmp_path / 'projects'}\nimages_path = {tmp_path / 'images'}\n"
                    "local = false\n")
    return path


@pytest.fixture
def start_server(tmp_path: Path, config_file: Path, plugin_env: dict[str, str]):
    servers: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        server = ServerProcess(config_file, args=extra, env=plugin_env, command=gns3server(),
                               log=tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.kill()


def test_version_flags() -> None:
    expected = f"gns3core {gns3core.__version__}"
    out = subprocess.run(gns3server() + ["--version"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == expected
    out = subprocess.run([sys.executable, "-m", "gns3core", "--version"], capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == expected


def test_list_plugins_command(plugin_env) -> None:
    out = subprocess.run(gns3server() + ["--list-plugins"], capture_output=True, text=True, timeout=60,
                         env=plugin_env, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ("example (gns3-example-plugin 0.0.1): emulator example: program found "
                        "(no external program needed)")
    # GNS3_PLUGINS=example: every API v1 kind is listed as not installed, with the distribution that serves it.
    assert lines[1:] == [f"{segment}: not installed ({title}: install gns3-{segment})" for segment, title in (
        ("vpcs", "VPCS"), ("qemu", "Qemu"), ("docker", "Docker"), ("dynamips", "Dynamips"), ("iou", "IOU"),
        ("virtualbox", "VirtualBox"), ("vmware", "VMware"))]


def test_plugin_file_option(start_server, tmp_path) -> None:
    """`--plugin PATH` mounts a plugin module straight from a file: no packaging, no entry point."""
    plugin = tmp_path / "dev_example.py"
    plugin.write_text((EXAMPLE_DIR / "gns3_example.py").read_text())
    env = {**os.environ, "GNS3_PLUGINS": "none-installed"}
    out = subprocess.run(gns3server() + ["--list-plugins", "--plugin", str(plugin)], capture_output=True,
                         text=True, timeout=60, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (f"dev_example (file {plugin}): emulator example: program found "
                                          "(no external program needed)")
    server = start_server("--local", "--plugin", str(plugin))
    status, project = http(server.port, "POST", "/v1/projects", {"name": "dev"})
    assert status == 201
    status, vm = http(server.port, "POST", f"/v1/projects/{project['project_id']}/example/vms", {"name": "v"})
    assert status == 201, vm


def test_help_lists_the_spec_flags() -> None:
    out = subprocess.run(gns3server() + ["--help"], capture_output=True, text=True, timeout=60, check=True)
    for flag in ("--host", "--port", "--config", "--local", "--allow", "--debug", "--quiet", "--log", "--pid",
                 "--daemon", "--ssl", "--certfile", "--certkey", "--record", "--list-plugins"):
        assert flag in out.stdout


def test_server_answers_and_stops_on_sigterm(start_server) -> None:
    server = start_server("--local")
    assert http(server.port, "GET", "/v1/version") == (200, {"version": "1.5.4", "local": True})
    status, _ = http(server.port, "GET", "/v1/nothing")
    assert status == 404
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0


def test_command_line_wins_over_the_file(start_server) -> None:
    server = start_server()  # the file says local = false, and no --local
    assert http(server.port, "GET", "/v1/version")[1]["local"] is False
    assert http(server.port, "POST", "/v1/config/reload")[0] == 403
    local = start_server("--local")
    assert http(local.port, "GET", "/v1/version")[1]["local"] is True
    assert http(local.port, "POST", "/v1/config/reload")[0] == 201
    assert http(local.port, "GET", "/v1/version")[1]["local"] is True


def start_example_vms(port: int, count: int) -> tuple[str, list[str]]:
    status, project = http(port, "POST", "/v1/projects", {"name": "sig", "temporary": True})
    assert status == 201
    pid = project["project_id"]
    vm_ids = []
    for i in range(count):
        status, vm = http(port, "POST", f"/v1/projects/{pid}/example/vms", {"name": f"vm{i}"})
        assert status == 201, vm
        assert http(port, "POST", f"/v1/projects/{pid}/example/vms/{vm['vm_id']}/start")[0] == 204
        vm_ids.append(vm["vm_id"])
    return project["path"], vm_ids


def emulator_processes(server_pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(server_pid).children(recursive=True) if "example VM running" in " ".join(
        p.cmdline())]


def assert_all_gone(processes: list[psutil.Process]) -> None:
    _gone, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == [], [p.pid for p in alive]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_vm(start_server, sig) -> None:
    server = start_server("--local")
    project_path, _ = start_example_vms(server.port, 3)
    processes = emulator_processes(server.proc.pid)
    assert len(processes) == 3
    server.proc.send_signal(sig)
    assert server.proc.wait(20) == 0
    assert_all_gone(processes)
    assert not Path(project_path).exists()  # the temporary project was closed
    assert "Traceback" not in server.log.read_text()


def test_shutdown_endpoint_stops_the_process_and_its_vms(start_server) -> None:
    server = start_server("--local")
    _, _ = start_example_vms(server.port, 2)
    processes = emulator_processes(server.proc.pid)
    assert len(processes) == 2
    assert http(server.port, "POST", "/v1/server/shutdown", {}) == (201, None)
    assert server.proc.wait(20) == 0
    assert_all_gone(processes)


def test_shutdown_refused_on_a_remote_server(start_server) -> None:
    server = start_server()
    assert http(server.port, "POST", "/v1/server/shutdown")[0] == 403
    assert http(server.port, "GET", "/v1/version")[0] == 200


def test_sigterm_with_open_streams_is_prompt(start_server) -> None:
    """A connected GNS3 client always holds a notification stream (and maybe a capture stream) open: neither may
    hold the server up when it is asked to stop."""
    server = start_server("--local")
    project_path, _ = start_example_vms(server.port, 1)
    processes = emulator_processes(server.proc.pid)
    pid = Path(project_path).name
    capture = Path(project_path) / "capture.pcap"
    capture.write_bytes(b"pcap")
    streams = []
    for path, body in ((f"/v1/projects/{pid}/notifications", b""),
                       ("/v1/files/stream", json.dumps({"location": str(capture)}).encode())):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        streams.append(sock)
    try:
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        assert time.monotonic() - started < 10, "the server waited for the streams to end by themselves"
        assert_all_gone(processes)
    finally:
        for sock in streams:
            sock.close()


def test_pid_and_log_files(start_server, tmp_path, plugin_env, config_file) -> None:
    pid_file = tmp_path / "gns3.pid"
    log_file = tmp_path / "gns3.log"
    server = start_server("--pid", str(pid_file), "--log", str(log_file))
    assert pid_file.read_text().strip() == str(server.proc.pid)
    # A second server with the same pid file refuses to start while the first one lives.
    second = subprocess.run(gns3server() + ["--port", str(free_tcp_port()), "--config", str(config_file), "--pid",
                                            str(pid_file)], capture_output=True, text=True, env=plugin_env, timeout=60)
    assert second.returncode == 1
    assert f"already running with pid {server.proc.pid}" in second.stderr
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert not pid_file.exists()
    assert "listening on 127.0.0.1" in log_file.read_text()


def test_new_plugin_writes_a_distribution_whose_tests_pass(tmp_path) -> None:
    """The scaffold's own conformance tests pass untouched (here from its source tree; the packaging tests install
    it from a wheel into a fresh environment as well)."""
    target = tmp_path / "gns3-demo"
    out = subprocess.run(gns3server() + ["new-plugin", "demo", str(target)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert f"Wrote the distribution gns3-demo in {target}" in out.stdout
    assert (target / "pyproject.toml").read_text().count('demo = "gns3_demo.plugin"') == 1
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=target, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


@pytest.mark.parametrize(("name", "reason"), [("My-Emu", "cannot be a kind name"), ("vpcs", "already an API v1 kind"),
                                              ("class", "cannot be a kind name")])
def test_new_plugin_refuses_bad_names(tmp_path, name, reason) -> None:
    out = subprocess.run(gns3server() + ["new-plugin", name, str(tmp_path / "x")], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and reason in out.stderr
    assert not (tmp_path / "x").exists()


def test_new_plugin_keeps_an_existing_directory(tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    out = subprocess.run(gns3server() + ["new-plugin", "demo", str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and "is not an empty directory" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_the_command_line_of_the_gns3_154_client(start_server, tmp_path, config_file) -> None:
    """The 1.5.4 client starts its local server with `--controller` (and these flags); an unknown flag would abort."""
    log_file, pid_file = tmp_path / "client.log", tmp_path / "client.pid"
    server = start_server("--local", "--controller", "--allow", "--debug", f"--log={log_file}", f"--pid={pid_file}")
    assert http(server.port, "GET", "/v1/version") == (200, {"version": "1.5.4", "local": True})
    assert pid_file.read_text().strip() == str(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert log_file.read_text().count("Controller mode is on") == 1
    plain = start_server("--log", str(log_file))  # without it: nothing is said
    plain.proc.send_signal(signal.SIGTERM)
    assert plain.proc.wait(15) == 0
    assert log_file.read_text().count("Controller mode is on") == 1
    config_file.write_text(config_file.read_text() + "controller = true\n")  # the same from [Server] controller
    configured = start_server("--log", str(log_file))
    configured.proc.send_signal(signal.SIGTERM)
    assert configured.proc.wait(15) == 0
    assert log_file.read_text().count("Controller mode is on") == 2
