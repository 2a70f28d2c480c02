"""STAND-IN for VMware's `vmrun` and `vmware -v`, for the tests only: VMware cannot be installed on this machine.

It answers the vmrun commands the server uses (`list`, `start`, `stop`, `pause`, `unpause`, `reset`, `snapshot`,
`clone`) the way VMware Workstation's vmrun does: silent success with exit status 0, or a line `Error: <reason>` on
stdout with exit status 255. Its state (which VMs run, under which process) is a JSON file in its state directory;
every call is appended to `calls.jsonl` there, so tests can check the exact argument lists. A started VM is a
separate, detached process (standin_vm.py, run as `vmware-vmx <vmx>` like VMware's own VM process) that outlives
the vmrun call; `start` returns once that process reports the VM powered on.

The state directory may hold `config.json`: `{"product": "VMware Workstation 12.5.9 build-7535481",
"fail": {"<command>": "Error: ..."}, "delay": {"<command>": seconds}}` to change the version `vmware -v` prints, make
a command fail as vmrun fails, or make it slow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

STANDIN_NOTE = "(VMware stand-in for tests)"
DEFAULT_PRODUCT = "VMware Workstation 12.5.9 build-7535481"
VMRUN_VERSION = "vmrun version 1.15.0 build-7535481"
PAIR = re.compile(r'^\s*([^\s=#"]+)\s*=\s*"?([^"\r\n]*)"?\s*$')
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class VmrunError(Exception):
    """Printed as `Error: <message>`, exit status 255 (what vmrun does on every failure)."""


# -- VMware settings files, read and written independently of the server's own code ------------------------------


def read_settings(path: Path | str) -> dict[str, str]:
    settings: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            match = PAIR.match(line)
            if match and not line.lstrip().startswith("#"):
                settings[match.group(1).lower()] = match.group(2)
    return settings


def append_settings(path: Path | str, pairs: dict[str, str]) -> None:
    """Add or replace keys (VMware writes mixed-case keys; matching is case-insensitive), atomically."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True) \
        if path.exists() else ['.encoding = "UTF-8"\n']
    wanted = {key.lower(): (key, value) for key, value in pairs.items()}
    out = []
    for line in lines:
        match = PAIR.match(line)
        if match and match.group(1).lower() in wanted:
            key, value = wanted.pop(match.group(1).lower())
            out.append(f'{key} = "{value}"\n')
        else:
            out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(f'{key} = "{value}"\n' for key, value in wanted.values())
    tmp = path.with_name(path.name + ".standin-tmp")
    tmp.write_text("".join(out), encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


def remove_settings(path: Path, keys: set[str]) -> None:
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)
    kept = [line for line in lines if not ((m := PAIR.match(line)) and m.group(1).lower() in keys)]
    tmp = path.with_name(path.name + ".standin-tmp")
    tmp.write_text("".join(kept), encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


# -- state -----------------------------------------------------------------------------------------------------


class State:
    """The stand-in's state directory: running VMs, the call log, the configuration."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.file = self.dir / "state.json"

    @contextlib.contextmanager
    def locked(self):
        with open(self.dir / "state.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def load(self) -> dict:
        try:
            return json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {"running": {}}

    def save(self, data: dict) -> None:
        tmp = self.file.with_name("state.json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.file)

    def config(self) -> dict:
        try:
            return json.loads((self.dir / "config.json").read_text())
        except (OSError, ValueError):
            return {}

    def log_call(self, argv: list[str]) -> None:
        with open(self.dir / "calls.jsonl", "a") as handle:
            handle.write(json.dumps(argv) + "\n")

    def running(self) -> dict[str, dict]:
        """The VMs whose process is still there (a VM whose process died is forgotten, as VMware forgets it)."""
        data = self.load()
        alive = {vmx: entry for vmx, entry in data["running"].items() if vm_process_alive(entry["pid"], vmx)}
        if alive != data["running"]:
            data["running"] = alive
            self.save(data)
        return alive


def vm_process_alive(pid: int, vmx: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and os.fsencode(vmx) in cmdline


def runtime_info(state: State, pid: int) -> dict:
    try:
        return json.loads((state.dir / f"vm-{pid}.json").read_text())
    except (OSError, ValueError):
        return {}


# -- commands --------------------------------------------------------------------------------------------------


def find_running(state: State, vmx: str) -> dict | None:
    running = state.running()
    for path, entry in running.items():
        if os.path.normpath(path) == os.path.normpath(vmx):
            return entry
    return None


def require_vmx(vmx: str) -> None:
    if not os.path.isfile(vmx):
        raise VmrunError(f"Cannot open VM: {vmx}, The virtual machine cannot be found")


def require_running(state: State, vmx: str) -> dict:
    entry = find_running(state, vmx)
    if entry is None:
        raise VmrunError(f"The virtual machine is not powered on: {vmx}")
    return entry


def cmd_list(state: State, host_type: str, args: list[str]) -> str:
    running = state.running()
    return "\n".join([f"Total running VMs: {len(running)}", *running])


def cmd_start(state: State, host_type: str, args: list[str]) -> str:
    if not args:
        raise VmrunError("Invalid argument: start needs the path of a .vmx file")
    vmx = args[0]
    mode = args[1] if len(args) > 1 else "gui"
    if mode not in ("gui", "nogui"):
        raise VmrunError(f"Invalid argument: {mode}")
    require_vmx(vmx)
    if find_running(state, vmx) is not None:
        raise VmrunError("The file is already in use")
    read_fd, write_fd = os.pipe()
    program = state.dir / "bin" / "vmware-vmx"
    log = open(Path(vmx).with_name("vmware.log"), "ab")  # noqa: SIM115 - handed to the VM process
    try:
        proc = subprocess.Popen([str(program), "-s", f"standin.readyfd={write_fd}", "-s", f"standin.mode={mode}",
                                 vmx], stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,),
                                start_new_session=True)
    finally:
        os.close(write_fd)
        log.close()
    answer = b""
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while b"\n" not in answer and (left := deadline - time.monotonic()) > 0:
            if not select.select([read_fd], [], [], left)[0]:
                break
            chunk = os.read(read_fd, 256)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(read_fd)
    text = answer.decode(errors="replace").strip()
    if text != "ok":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise VmrunError(text.removeprefix("error: ") or "The virtual machine could not be powered on")
    with state.locked():
        data = state.load()
        data["running"][vmx] = {"pid": proc.pid, "paused": False, "mode": mode}
        state.save(data)
    return ""


def _signal_vm(entry: dict, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(entry["pid"], sig)


def cmd_stop(state: State, host_type: str, args: list[str]) -> str:
    vmx = args[0] if args else ""
    mode = args[1] if len(args) > 1 else "hard"
    if mode not in ("hard", "soft"):
        raise VmrunError(f"Invalid argument: {mode}")
    entry = require_running(state, vmx)
    _signal_vm(entry, signal.SIGCONT)
    _signal_vm(entry, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while vm_process_alive(entry["pid"], vmx) and time.monotonic() < deadline:
        time.sleep(0.02)
    if vm_process_alive(entry["pid"], vmx):
        _signal_vm(entry, signal.SIGKILL)
    with state.locked():
        data = state.load()
        data["running"].pop(vmx, None)
        state.save(data)
    return ""


def _set_paused(state: State, vmx: str, paused: bool) -> None:
    with state.locked():
        data = state.load()
        if vmx in data["running"]:
            data["running"][vmx]["paused"] = paused
            state.save(data)


def cmd_pause(state: State, host_type: str, args: list[str]) -> str:
    if host_type != "ws":
        raise VmrunError("The operation is not supported")
    vmx = args[0] if args else ""
    entry = require_running(state, vmx)
    if not entry.get("paused"):
        _signal_vm(entry, signal.SIGUSR1)
        _set_paused(state, vmx, True)
    return ""


def cmd_unpause(state: State, host_type: str, args: list[str]) -> str:
    if host_type != "ws":
        raise VmrunError("The operation is not supported")
    vmx = args[0] if args else ""
    entry = require_running(state, vmx)
    if not entry.get("paused"):
        raise VmrunError("The virtual machine is not paused")
    _signal_vm(entry, signal.SIGUSR2)
    _set_paused(state, vmx, False)
    return ""


def cmd_reset(state: State, host_type: str, args: list[str]) -> str:
    vmx = args[0] if args else ""
    entry = require_running(state, vmx)
    _signal_vm(entry, signal.SIGHUP)
    _set_paused(state, vmx, False)
    return ""


def _snapshots(vmsd: dict[str, str]) -> dict[str, str]:
    """display name -> snapshot<N> prefix."""
    found = {}
    for key, value in vmsd.items():
        match = re.match(r"^(snapshot\d+)\.displayname$", key)
        if match:
            found[value] = match.group(1)
    return found


def cmd_snapshot(state: State, host_type: str, args: list[str]) -> str:
    if host_type == "player":
        raise VmrunError("The operation is not supported")
    if len(args) < 2:
        raise VmrunError("Invalid argument: snapshot needs a .vmx file and a snapshot name")
    vmx, name = args[0], args[1]
    require_vmx(vmx)
    vmsd = Path(os.path.splitext(vmx)[0] + ".vmsd")
    current = read_settings(vmsd) if vmsd.exists() else {}
    count = int(current.get("snapshot.numsnapshots", "0"))
    uid = int(current.get("snapshot.lastuid", "0")) + 1
    snapshot_file = Path(vmx).with_name(f"{Path(vmx).stem}-Snapshot{uid}.vmsn")
    snapshot_file.write_bytes(b"stand-in snapshot state\n")
    prefix = f"snapshot{count}"
    append_settings(vmsd, {
        "snapshot.lastUID": str(uid), "snapshot.current": str(uid), "snapshot.numSnapshots": str(count + 1),
        f"{prefix}.uid": str(uid), f"{prefix}.filename": snapshot_file.name, f"{prefix}.displayName": name,
        f"{prefix}.type": "1", f"{prefix}.numDisks": "0",
    })
    return ""


def cmd_clone(state: State, host_type: str, args: list[str]) -> str:
    if host_type == "player":
        raise VmrunError("The operation is not supported")
    positional = [a for a in args if not a.startswith("-")]
    options = dict(a[1:].split("=", 1) for a in args if a.startswith("-") and "=" in a)
    if len(positional) < 3 or positional[2] not in ("full", "linked"):
        raise VmrunError("Invalid argument: clone needs a source .vmx, a destination .vmx and full|linked")
    source, destination, kind = positional[:3]
    require_vmx(source)
    if os.path.exists(destination):
        raise VmrunError("The destination file already exists")
    if not os.path.isdir(os.path.dirname(destination)):
        raise VmrunError(f"Cannot create the clone: {os.path.dirname(destination)} does not exist")
    vmsd = Path(os.path.splitext(source)[0] + ".vmsd")
    snapshots = _snapshots(read_settings(vmsd)) if vmsd.exists() else {}
    snapshot = options.get("snapshot")
    if kind == "linked" and snapshot not in snapshots:
        raise VmrunError(f"Invalid snapshot name '{snapshot}'" if snapshot else
                         "A linked clone needs a snapshot (-snapshot=<name>)")
    clone_name = options.get("cloneName") or f"Clone of {read_settings(source).get('displayname', 'VM')}"
    lines = []
    for line in Path(source).read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True):
        match = PAIR.match(line)
        key = match.group(1).lower() if match else ""
        if key.startswith("uuid.") or key.endswith(".generatedaddress") or key == "displayname":
            continue
        lines.append(line if line.endswith("\n") else line + "\n")
    lines.append(f'displayName = "{clone_name}"\n')
    if kind == "linked":
        lines.append(f'standin.linkedParent = "{source}"\n')
    Path(destination).write_text("".join(lines), encoding="utf-8", errors="surrogateescape")
    if kind == "linked":
        prefix = snapshots[snapshot]
        settings = read_settings(vmsd)
        clones = int(settings.get(f"{prefix}.numclones", "0"))
        append_settings(vmsd, {f"{prefix}.numClones": str(clones + 1), f"{prefix}.clone{clones}": destination})
    register_in_inventory(destination, clone_name)
    return ""


def register_in_inventory(vmx: str, name: str) -> None:
    inventory = Path(os.path.expanduser("~/.vmware/inventory.vmls"))
    inventory.parent.mkdir(parents=True, exist_ok=True)
    existing = read_settings(inventory) if inventory.exists() else {}
    numbers = [int(m.group(1)) for key in existing if (m := re.match(r"^vmlist(\d+)\.", key))]
    n = max(numbers, default=0) + 1
    append_settings(inventory, {f"vmlist{n}.config": vmx, f"vmlist{n}.DisplayName": name,
                                f"vmlist{n}.ParentID": "0", f"vmlist{n}.ItemID": str(n), f"vmlist{n}.SeqID": "0",
                                f"vmlist{n}.IsFavorite": "FALSE", f"vmlist{n}.IsClone": "TRUE",
                                f"vmlist{n}.State": "normal"})


COMMANDS = {
    "list": cmd_list, "start": cmd_start, "stop": cmd_stop, "pause": cmd_pause, "unpause": cmd_unpause,
    "reset": cmd_reset, "snapshot": cmd_snapshot, "clone": cmd_clone,
}


def vmrun_main(argv: list[str], state_dir: str) -> int:
    """`vmrun [-T <host type>] <command> [<args>]`. Two calls at once are recorded in `overlaps.jsonl` (the server
    must never make them: VMware's VIX layer does not cope)."""
    state = State(state_dir)
    state.log_call(argv)
    with open(state.dir / "busy.lock", "w") as busy:
        try:
            fcntl.flock(busy, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(state.dir / "overlaps.jsonl", "a") as handle:
                handle.write(json.dumps(argv) + "\n")
            fcntl.flock(busy, fcntl.LOCK_EX)
        return _vmrun(state, argv)


def _vmrun(state: State, argv: list[str]) -> int:
    args = list(argv)
    host_type = "ws"
    if len(args) >= 2 and args[0] == "-T":
        host_type = args[1]
        args = args[2:]
    if not args:
        print(f"\n{VMRUN_VERSION} {STANDIN_NOTE}\n\nUsage: vmrun [AUTHENTICATION-FLAGS] COMMAND [PARAMETERS]")
        return 255
    command, rest = args[0], args[1:]
    config = state.config()
    delay = config.get("delay", {}).get(command)
    if delay:
        time.sleep(float(delay))
    failure = config.get("fail", {}).get(command)
    if failure:
        print(failure)
        return 255
    handler = COMMANDS.get(command)
    try:
        if handler is None:
            raise VmrunError(f"Unrecognized command: {command}")
        if host_type not in ("ws", "player", "fusion", "server", "ws-shared", "esx", "vc"):
            raise VmrunError(f"Unknown host type: {host_type}")
        output = handler(state, host_type, rest)
    except VmrunError as exc:
        print(f"Error: {exc}")
        return 255
    if output:
        print(output)
    return 0


def product_main(argv: list[str], state_dir: str) -> int:
    """`vmware -v`: the product and version, as Workstation prints them."""
    if argv[:1] != ["-v"]:
        print(f"{STANDIN_NOTE}: only -v is answered", file=sys.stderr)
        return 1
    print(State(state_dir).config().get("product", DEFAULT_PRODUCT))
    return 0
