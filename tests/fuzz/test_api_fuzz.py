"""Fuzzing every route with schemathesis against a real server with every installed plugin.

The server is started under `strace -f`, with a working directory, HOME and TMPDIR of its own, and not in local mode.
Path ids are pointed at a live project and at live VMs of each kind, so generated bodies reach the handlers instead
of stopping at a 404. Four properties are checked:

- no 5xx;
- every response matches its documented schema (OpenAPI from `GET /v1/openapi.json`);
- no request takes 5 s or more;
- no file is written, created, renamed, removed or re-moded outside the projects and images directories (the
  server's own temporary files in its TMPDIR excepted), by the server or by any emulator it starts.

Kinds whose program is missing here (IOU, VirtualBox, VMware run against stand-ins in their own suites; Docker is
pointed at an engine socket that does not exist) answer 409, which is fine. `GNS3_FUZZ_EXAMPLES` sets the number of
generated examples per operation (default 12); the run stays well under 10 minutes on this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from gns3core.testing import require  # noqa: E402
from gns3core.testing.server import ServerProcess, write_config  # noqa: E402

EXAMPLES = int(os.environ.get("GNS3_FUZZ_EXAMPLES", "12"))
SLOW = 5.0
ENDLESS = r"/notifications$|/files/stream$"  # streams that never end on their own: not fuzzed
VM_PATH = re.compile(r"^/v1/projects/\{project_id\}/([^/]+)/([^/]+)/\{(vm_id|device_id|id)\}")
# Bodies that create a VM of each kind in the live project (a kind that cannot create one here is fuzzed without).
CREATE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("vpcs", "vms"): {"name": "fuzz-pc"},
    ("qemu", "vms"): {"name": "fuzz-qemu", "platform": "x86_64", "ram": 32},
    ("dynamips", "vms"): {"name": "fuzz-r1", "platform": "c7200", "image": "c7200-fuzz.image", "ram": 128},
    ("dynamips", "devices"): {"name": "fuzz-hub", "device_type": "ethernet_hub"},
    ("iou", "vms"): {"name": "fuzz-iou", "path": "iou-fuzz.bin"},
    ("docker", "images"): {"name": "fuzz-docker", "imagename": "busybox:latest"},
    ("docker", "vms"): {"name": "fuzz-docker", "image": "busybox:latest"},
}
WRITE_CALLS = re.compile(r"^(\d+)\s+(open|openat|creat|mkdir|mkdirat|rename|renameat2?|link|linkat|symlink|symlinkat|"
                         r"unlink|unlinkat|rmdir|chmod|fchmodat|truncate|chdir)\((.*)\)\s+=\s+\d+")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")


class Live:
    """The server, its directories, and the project and VMs that path ids are pointed at."""

    def __init__(self, server: ServerProcess, root: Path) -> None:
        self.server = server
        self.root = root
        self.session = requests.Session()
        self.project_id = str(uuid.uuid4())
        self.vms: dict[tuple[str, str], str | None] = {}
        self.slow: list[str] = []
        self.statuses: dict[int, int] = {}

    @property
    def url(self) -> str:
        return self.server.url

    def ensure_project(self) -> str:
        reply = self.session.get(f"{self.url}/v1/projects/{self.project_id}", timeout=10)
        if reply.status_code == 404:
            self.session.post(f"{self.url}/v1/projects", json={"name": "fuzz", "project_id": self.project_id},
                              timeout=10)
            self.vms.clear()
        return self.project_id

    def ensure_vm(self, segment: str, collection: str) -> str | None:
        key = (segment, collection)
        base = f"{self.url}/v1/projects/{self.project_id}/{segment}/{collection}"
        vm_id = self.vms.get(key)
        if vm_id is not None and self.session.get(f"{base}/{vm_id}", timeout=10).status_code == 200:
            return vm_id
        body = CREATE_BODIES.get(key)
        if body is None:
            return None
        reply = self.session.post(base, json=body, timeout=30)
        created = reply.json() if reply.status_code == 201 else {}
        self.vms[key] = created.get("vm_id") or created.get("device_id") or created.get("id")
        return self.vms[key]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require(shutil.which("strace") is not None, "strace is not installed (apt-get install strace)")
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("cwd", "home", "tmp"):
        (root / name).mkdir()
    config = write_config(root / "gns3_server.conf", root, Server={
        "console_start_port_range": 47000, "console_end_port_range": 47999,
        "udp_start_port_range": 48000, "udp_end_port_range": 48999,
    }, Docker={"docker_host": f"unix://{root / 'no-docker-engine.sock'}"})
    env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp")}
    env.pop("DOCKER_HOST", None)
    trace = root / "strace.log"
    command = ["env", "-C", str(root / "cwd"), "strace", "-f", "-qq", "-z", "-o", str(trace), "-e",
               "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,"
               "unlinkat,rmdir,chmod,fchmodat,truncate,chdir", sys.executable, "-m", "gns3core"]
    server = ServerProcess(config, args=("--quiet",), env=env, command=command, log=root / "server.log")
    server.start(timeout=60)
    state = Live(server, root)
    try:
        yield state
    finally:
        stop_traced(server, root)


def stop_traced(server: ServerProcess, root: Path) -> None:
    """SIGTERM reaches the server through strace; wait for the server itself (strace's child) to finish its
    shutdown, then end anything still working under `root`, so no emulator outlives the test."""
    import psutil

    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.stop(timeout=30)
    psutil.wait_procs(children, timeout=30)
    leftovers = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd == str(root) or cwd.startswith(str(root) + os.sep):
            leftovers.append(proc)
    for proc in [*children, *leftovers]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    server.kill()


def check_case(case, live: Live) -> None:
    """Send one generated request (ids pointed at live objects) and apply the four checks."""
    template = case.operation.path
    if "{project_id}" in template:
        case.path_parameters["project_id"] = live.ensure_project()
    match = VM_PATH.match(template)
    if match is not None:
        vm_id = live.ensure_vm(match.group(1), match.group(2))
        if vm_id is not None:
            case.path_parameters[match.group(3)] = vm_id
    started = time.monotonic()
    response = case.call(base_url=live.url, session=live.session, timeout=30)
    elapsed = time.monotonic() - started
    live.statuses[response.status_code] = live.statuses.get(response.status_code, 0) + 1
    if elapsed >= SLOW:
        live.slow.append(f"{case.method} {case.formatted_path}: {elapsed:.1f} s")
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def test_every_route_survives_generated_requests(live: Live) -> None:
    """Each operation of the served OpenAPI document gets EXAMPLES generated requests (no shrinking: a failure is
    reported as generated, with its curl command line)."""
    schema = schemathesis.openapi.from_url(f"{live.url}/v1/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if re.search(ENDLESS, operation.path):
            continue
        operations += 1

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            check_case(case, live)

        try:
            run()
        except Exception as exc:  # collected: every operation is fuzzed, all failures are shown together
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:1500]
    print(f"fuzzed {operations} operations, {sum(live.statuses.values())} requests, statuses {live.statuses}")
    assert operations > 50
    assert sum(n for status, n in live.statuses.items() if status < 300) > operations // 4  # handlers were reached
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
    assert not live.slow, live.slow


def written_paths(trace: Path) -> list[tuple[str, str]]:
    """(call, path) of every successful call that changes the file system, from strace's log."""
    found = []
    for line in trace.read_text(errors="replace").splitlines():
        match = WRITE_CALLS.match(line)
        if match is None:
            continue
        call, args = match.group(2), match.group(3)
        if call in ("open", "openat", "creat") and call != "creat" and not any(f in args for f in WRITE_FLAGS):
            continue
        found += [(call, path) for path in re.findall(r'"((?:[^"\\]|\\.)*)"', args)]
    return found


def test_trace_reading() -> None:
    lines = ['12 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3',
             '12 openat(AT_FDCWD, "/tmp/x \\"y\\"", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3',
             '13 renameat2(AT_FDCWD, "/a/.b.tmp", AT_FDCWD, "/a/b", 0) = 0', '13 chdir("/p/vm") = 0',
             '14 mkdir("/q", 0777) = 0', '15 unlink("/r") = 0']
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gns3-trace-{os.getpid()}.log"
    path.write_text("\n".join(lines) + "\n")
    try:
        assert written_paths(path) == [("openat", '/tmp/x \\"y\\"'), ("renameat2", "/a/.b.tmp"),
                                       ("renameat2", "/a/b"), ("chdir", "/p/vm"), ("mkdir", "/q"), ("unlink", "/r")]
    finally:
        path.unlink()


def test_no_file_written_outside_projects_and_images(live: Live) -> None:
    """Runs after the fuzzing (same module): the server is stopped, then its whole trace is read."""
    stop_traced(live.server, live.root)
    root = live.root
    allowed = [root / "projects", root / "images", root / "tmp", Path("/dev"), Path("/proc"), Path("/sys/fs/cgroup")]
    outside = []
    for call, path in written_paths(root / "strace.log"):
        if not path.startswith("/"):
            if path == ".." or path.startswith("../") or "/../" in path:
                outside.append((call, path))
            continue  # relative to the process's directory, which `chdir` records are checked for below
        if not any(Path(path) == base or base in Path(path).parents for base in allowed):
            if not (call == "chdir" and Path(path) == root / "cwd"):
                outside.append((call, path))
    assert not outside, outside[:20]
    assert list((root / "cwd").iterdir()) == []  # the server wrote nothing in its working directory
