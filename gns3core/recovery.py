"""Crash recovery at start: what an earlier run of this server left behind is taken back before the first request.

A server killed with SIGKILL cannot clean up. Its direct children die with it (PR_SET_PDEATHSIG, see
`gns3core.emulator.process`), but a grandchild (the VPC that vpcs forks) is adopted by init and keeps its ports.
At start the server ends every process working inside its projects directory that no live server owns, then
removes half-written files (`.<name>.XXXXXXXX.tmp` of atomic writes, `.upload` of image uploads) and temporary
projects, including one whose marker was still being written.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

TEMPORARY_MARKER = ".gns3_temporary"
PARTIAL_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.(tmp|upload)$")  # tempfile.mkstemp names of files.py/images.py
TERM_TIMEOUT = 3.0


@dataclass
class RecoveryReport:
    processes: list[int] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)
    temporary_projects: list[str] = field(default_factory=list)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def looks_like_server(argv: list[str]) -> bool:
    """`gns3server ...` or `python -m gns3core ...`."""
    for index, arg in enumerate(argv):
        if os.path.basename(arg) == "gns3server":
            return True
        if arg == "-m" and index + 1 < len(argv) and argv[index + 1] == "gns3core":
            return True
    return False


def _owned_by_live_server(proc: psutil.Process, me: int) -> bool:
    """True when a running server (another one, or this one) is among the process's ancestors."""
    try:
        for parent in proc.parents():
            if parent.pid == me:
                return True
            if parent.pid <= 1:
                continue
            if looks_like_server(parent.cmdline()):
                return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return False


def leftover_processes(projects_dir: Path) -> list[psutil.Process]:
    """Processes of our user whose working directory is inside the projects directory and that no live server owns."""
    root = os.path.realpath(projects_dir)
    me = os.getpid()
    uid = os.getuid()
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cwd"]):
        info = proc.info
        if info["pid"] == me or not info.get("cwd") or info.get("uids") is None or info["uids"].real != uid:
            continue
        if not _inside(os.path.realpath(info["cwd"]), root):
            continue
        if _owned_by_live_server(proc, me):
            continue
        found.append(proc)
    return found


def end_processes(processes: list[psutil.Process]) -> list[int]:
    """SIGTERM, then SIGKILL for those still there after a few seconds; the pids ended."""
    ended = []
    for proc in processes:
        try:
            log.warning("Ending %s (pid %s) left behind by an earlier run of the server (working directory %s)",
                        proc.name(), proc.pid, proc.cwd())
            proc.terminate()
            ended.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _gone, alive = psutil.wait_procs(processes, timeout=TERM_TIMEOUT)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=TERM_TIMEOUT)
    return ended


def remove_partial_files(roots: Iterable[Path]) -> list[str]:
    """Temporary files of writes and uploads cut short: the server is not running yet, so none is in progress."""
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                if not PARTIAL_FILE.match(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    os.unlink(path)
                except OSError:
                    continue
                removed.append(path)
    for path in removed:
        log.info("Removed the half-written file %s", path)
    return removed


def remove_temporary_projects(location: Path) -> list[str]:
    """Project directories with the temporary marker, or with only the half-written marker of a creation cut short."""
    removed = []
    if not location.is_dir():
        return removed
    for entry in location.iterdir():
        try:
            if not entry.is_dir() or entry.is_symlink():
                continue
            marked = (entry / TEMPORARY_MARKER).exists()
            half_marked = not marked and any(PARTIAL_FILE.match(p.name) and p.name.startswith(TEMPORARY_MARKER + ".")
                                             for p in entry.iterdir())
        except OSError:
            continue
        if marked or half_marked:
            log.info("Removing leftover temporary project %s", entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


def recover(projects_dir: Path, images_dir: Path) -> RecoveryReport:
    """Everything, in order: processes first (they may be writing), then files."""
    report = RecoveryReport()
    report.processes = end_processes(leftover_processes(projects_dir))
    report.temporary_projects = remove_temporary_projects(projects_dir)
    report.partial_files = remove_partial_files([projects_dir, images_dir])
    return report
