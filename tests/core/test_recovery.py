"""Crash recovery: children die with the server, and a restart takes back what an earlier run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from gns3core import recovery
from gns3core.emulator.process import die_with_parent_hook
from gns3core.testing.server import ServerProcess, write_config

ORPHAN = "import os, sys, time\nif os.fork(): os._exit(0)\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n"


def start_orphan(cwd: Path) -> int:
    """A process working in `cwd` whose parent is gone (adopted by init), like a VPC left by a killed server."""
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN], cwd=cwd, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    with proc.stdout:
        pid = int(proc.stdout.readline())
    proc.wait(30)
    return pid


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_leftover_processes_are_ended_and_others_kept(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    vm_dir = projects / "p1" / "project-files" / "vpcs" / "vm1"
    vm_dir.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    leftover, bystander = start_orphan(vm_dir), start_orphan(outside)
    try:
        report = recovery.recover(projects, tmp_path / "images")
        assert leftover in report.processes and bystander not in report.processes
        assert not alive(leftover) and alive(bystander)
    finally:
        for pid in (leftover, bystander):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_partial_files_and_unmarked_temporary_projects_are_removed(tmp_path: Path) -> None:
    projects, images = tmp_path / "projects", tmp_path / "images"
    (projects / "kept" / "project-files").mkdir(parents=True)
    (images / "QEMU").mkdir(parents=True)
    partial = [projects / "kept" / ".topology.gns3.a1B2c3D4.tmp", images / "QEMU" / ".disk.qcow2.x9Y8z7W6.upload"]
    user_files = [projects / "kept" / "notes.tmp", images / "QEMU" / "disk.qcow2", projects / "kept" / ".hidden",
                  images / "QEMU" / ".odd.name.upload"]
    for path in [*partial, *user_files]:
        path.write_text("x")
    (projects / "temp").mkdir()
    (projects / "temp" / ".gns3_temporary").write_text("1")
    (projects / "cut-short").mkdir()  # created, then killed while its marker was being written
    (projects / "cut-short" / ".gns3_temporary.q1w2e3r4.tmp").write_text("")
    report = recovery.recover(projects, images)
    assert sorted(report.partial_files) == sorted(str(p) for p in partial)
    assert not any(p.exists() for p in partial)
    assert all(p.exists() for p in user_files)
    assert not (projects / "temp").exists() and not (projects / "cut-short").exists()
    assert (projects / "kept").is_dir()


def test_looks_like_server() -> None:
    assert recovery.looks_like_server(["/usr/bin/python3", "/x/.venv/bin/gns3server", "--local"])
    assert recovery.looks_like_server(["python", "-m", "gns3core", "--port", "1"])
    assert not recovery.looks_like_server(["python", "-m", "pytest", "/src/gns3core/tests"])


def test_child_dies_with_the_thread_owner(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a child started with the hook is killed when its parent is killed."""
    script = ("import subprocess, sys, time\n"
              "from gns3core.emulator.process import die_with_parent_hook\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
              " preexec_fn=die_with_parent_hook())\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
    assert die_with_parent_hook() is not None  # on Linux, from the main thread


def test_server_restart_reclaims_leftovers(tmp_path: Path) -> None:
    """A real server started over the leftovers of a killed one ends them before its first answer."""
    config = write_config(tmp_path / "gns3_server.conf", tmp_path)
    vm_dir = tmp_path / "projects" / "p" / "project-files" / "vpcs" / "vm"
    vm_dir.mkdir(parents=True)
    leftover = start_orphan(vm_dir)
    try:
        with ServerProcess(config, plugins="none"):
            assert not alive(leftover)
    finally:
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_recovery_needs_no_projects_directory(tmp_path: Path) -> None:
    report = recovery.recover(tmp_path / "missing", tmp_path / "images")
    assert report == recovery.RecoveryReport()
