"""The commands of the VBoxManage stand-in: a test double for Oracle VM VirtualBox's `VBoxManage`, not VirtualBox.

VirtualBox cannot be installed on the machines this project is tested on, so the VirtualBox plugin is tested
against this program. It accepts the subcommands and options the GNS3 API v1 server uses (and the few a test needs
to make a base VM: createvm, createmedium, storagectl), with the argument syntax, the machine-readable output and the
refusals of the real VBoxManage: an unknown VM, a VM in the wrong state (running, locked, not running) or a medium in
use is refused on stderr with exit code 1, a bad option or value with exit code 2 (VBoxManage's syntax-error code).
Its state lives in `$VBOX_USER_HOME` (see standin_machines.py). A started VM is a process of its own (`VBoxHeadless`
next to this file, see standin_vm.py) that outlives the `startvm` call, as a real VM process does.

Each run appends one JSON line (argv, start and end time, exit code) to `$VBOX_USER_HOME/standin-calls.jsonl`, so
tests can check the exact argument lists they caused and that no two runs overlapped.

Knobs for tests (environment): `VBOX_STANDIN_API_VERSION` (default 7_0), `VBOX_STANDIN_HANG=<subcommand>` (that
subcommand never answers, to test timeouts), `VBOX_STANDIN_CALLER` (recorded with each call, so a test's own
inspection calls can be told from the server's).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from standin_machines import (
    API_VERSION,
    ATTACHMENTS,
    CONTROLLER_TYPES,
    MAX_NICS,
    NIC,
    NIC_TYPES,
    UART,
    VERSION,
    Attachment,
    Machine,
    Medium,
    Registry,
    Snapshot,
    VBoxError,
    machine_from_xml,
    new_mac,
    new_uuid,
    write_file,
)

LOGO = f"VBoxManage stand-in {VERSION}: a test double for Oracle VM VirtualBox's VBoxManage, not VirtualBox\n\n"
HERE = Path(os.path.realpath(__file__)).parent
START_TIMEOUT = 60.0  # a generous bound: a loaded test machine starts Python slowly
LOCKED = "code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine"


def syntax(message: str) -> VBoxError:
    return VBoxError(message, code=2)


def progress() -> None:
    print("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")


def nic_slot(option: str, prefix: str, machine: Machine) -> int:
    """The adapter number of `--nic3`-like options (1-based), checked against the chipset."""
    digits = option[len(prefix):]
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_NICS["ich9"]:
        raise syntax(f"Invalid option: {option}")
    slot = int(digits)
    if slot > machine.max_nics:
        raise VBoxError(f"Invalid NIC number {slot} (the {machine.chipset} chipset has {machine.max_nics} adapters)")
    return slot


def on_off(option: str, value: str) -> bool:
    if value not in ("on", "off"):
        raise syntax(f"Invalid {option.lstrip('-')} argument '{value}' (on or off expected)")
    return value == "on"


def check_unlocked(registry: Registry, machine: Machine) -> None:
    if registry.session(machine) is not None:
        raise VBoxError(f"The machine '{machine.name}' is already locked for a session (or being unlocked)",
                        details=LOCKED)


class Args:
    """A cursor over the arguments of one subcommand."""

    def __init__(self, items: list[str]) -> None:
        self.items = list(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def next(self, what: str) -> str:
        if not self.items:
            raise syntax(f"Missing {what}")
        return self.items.pop(0)

    def value(self, option: str) -> str:
        if not self.items:
            raise syntax(f"Missing the value of option {option}")
        return self.items.pop(0)


def integer(option: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise syntax(f"Invalid value '{value}' for option {option}: a number is needed") from None


# -- medium files ------------------------------------------------------------------------------------------------------

def write_medium(location: str, medium_uuid: str, parent: str, capacity: int) -> None:
    """A disk image of the stand-in: a header with its uuid and parent, as a VDI header carries them."""
    header = {"standin_medium": medium_uuid, "parent": parent, "capacity_mb": capacity,
              "note": "disk image of the VBoxManage stand-in, not a VirtualBox disk"}
    write_file(Path(location), json.dumps(header).encode() + b"\n")


def open_medium(registry: Registry, location: str) -> Medium:
    medium = registry.find_medium(location)
    if medium is not None:
        return medium
    path = Path(os.path.abspath(location))
    try:
        header = json.loads(path.read_text())
        medium = Medium(header["standin_medium"], str(path), header.get("parent", ""), header.get("capacity_mb", 0))
    except FileNotFoundError:
        raise VBoxError(f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)") from None
    except (OSError, ValueError, KeyError):
        raise VBoxError(f"Could not open the medium '{path}'. VD: error VERR_VD_VDI_INVALID_HEADER opening image "
                        f"file '{path}'") from None
    if medium.parent and medium.parent not in registry.all_media():
        raise VBoxError(f"Parent medium with UUID {{{medium.parent}}} of the medium '{path}' is not found in the "
                        "media registry")
    registry.media[medium.uuid] = medium
    return medium


def differencing(registry: Registry, machine: Machine, parent: str) -> Medium:
    medium_uuid = new_uuid()
    location = str(machine.folder / "Snapshots" / f"{{{medium_uuid}}}.vdi")
    capacity = registry.all_media().get(parent, Medium("", "")).capacity_mb
    write_medium(location, medium_uuid, parent, capacity)
    medium = Medium(medium_uuid, location, parent, capacity)
    machine.media[medium_uuid] = medium
    return medium


# -- list, showvminfo, extra data ------------------------------------------------------------------------------------

def cmd_list(registry: Registry, args: Args) -> None:
    what = args.next("the list to show")
    while args:
        option = args.next("option")
        if option not in ("-l", "--long", "-s", "--sorted"):
            raise syntax(f"Unknown option: {option}")
    if what == "vms":
        for machine in registry.machines():
            print(f'"{machine.name}" {{{machine.uuid}}}')
        for machine_uuid in registry.inaccessible():
            print(f'"<inaccessible>" {{{machine_uuid}}}')
    elif what == "runningvms":
        for machine in registry.machines():
            if registry.session(machine) is not None:
                print(f'"{machine.name}" {{{machine.uuid}}}')
    elif what == "hdds":
        users = {}
        for machine in registry.machines():
            for item in machine.attachments:
                users.setdefault(item.medium, []).append(machine)
        for medium in registry.all_media().values():
            accessible = Path(medium.location).is_file()
            print(f"UUID:           {medium.uuid}")
            print(f"Parent UUID:    {medium.parent or 'base'}")
            print(f"State:          {'created' if accessible else 'inaccessible'}")
            print(f"Type:           normal ({'differencing' if medium.parent else 'base'})")
            print(f"Location:       {medium.location}")
            print("Storage format: VDI")
            print(f"Capacity:       {medium.capacity_mb} MBytes")
            print("Encryption:     disabled")
            in_use = users.get(medium.uuid)
            if in_use:
                print("In use by VMs:  " + ", ".join(f"{m.name} (UUID: {m.uuid})" for m in in_use))
            print()
    elif what == "systemproperties":
        print(f"API version:                     {API_VERSION}")
        print(f"Default machine folder:          {registry.home / 'VirtualBox VMs'}")
        print("Maximum guest RAM size:          2097152 Megabytes")
        print(f"Maximum PIIX3 Network Adapter count: {MAX_NICS['piix3']}")
        print(f"Maximum ICH9 Network Adapter count:  {MAX_NICS['ich9']}")
        print("Stand-in:                        this is the VBoxManage stand-in, not Oracle VM VirtualBox")
    else:
        raise syntax(f"Invalid parameter '{what}'")


def machine_readable(registry: Registry, machine: Machine) -> list[str]:
    state = registry.state(machine)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000", time.gmtime(machine.state_changed))
    lines = [
        f'name="{machine.name}"', 'groups="/"', f'ostype="{machine.ostype}"', f'UUID="{machine.uuid}"',
        f'CfgFile="{machine.settings_file}"', f'SnapFldr="{machine.folder / "Snapshots"}"',
        f'LogFldr="{machine.folder / "Logs"}"', f"memory={machine.memory}", f'chipset="{machine.chipset}"',
        f'hwvirtex="{"on" if machine.hwvirtex else "off"}"', f'VMState="{state}"', f'VMStateChangeTime="{stamp}"',
    ]
    for index, (name, kind) in enumerate(machine.controllers.items()):
        lines += [f'storagecontrollername{index}="{name}"', f'storagecontrollertype{index}="{kind}"']
    media = registry.all_media()
    for item in machine.attachments:
        key = f"{item.controller}-{item.port}-{item.device}"
        if item.medium:
            lines.append(f'"{key}"="{media[item.medium].location if item.medium in media else item.medium}"')
            lines.append(f'"{item.controller}-ImageUUID-{item.port}-{item.device}"="{item.medium}"')
        else:
            lines.append(f'"{key}"="emptydrive"')
    for slot in range(1, machine.max_nics + 1):
        nic = machine.nics.get(slot, NIC())
        if nic.attachment != "none":
            if nic.attachment == "nat":
                lines.append(f'natnet{slot}="nat"')
            lines += [f'macaddress{slot}="{nic.mac}"', f'cableconnected{slot}="{"on" if nic.cable else "off"}"']
        lines.append(f'nic{slot}="{nic.attachment}"')
        if nic.attachment != "none":
            lines += [f'nictype{slot}="{nic.type}"', f'nicspeed{slot}="0"']
            if nic.attachment == "generic":
                lines.append(f'nicgenericdrv{slot}="{nic.generic_driver}"')
    uart = machine.uart
    lines.append(f'uart1="{uart.iobase},{uart.irq}"' if uart.enabled else 'uart1="off"')
    if uart.enabled:
        lines.append(f'uartmode1="{uart.mode},{uart.path}"' if uart.path else f'uartmode1="{uart.mode}"')
    by_uuid = {s.uuid: s for s in machine.snapshots}
    for index, snapshot in enumerate(machine.snapshots):
        suffix = "" if index == 0 else "-" + "-".join(["1"] * index)
        lines += [f'SnapshotName{suffix}="{snapshot.name}"', f'SnapshotUUID{suffix}="{snapshot.uuid}"']
    if machine.current_snapshot in by_uuid:
        current = by_uuid[machine.current_snapshot]
        lines += [f'CurrentSnapshotName="{current.name}"', f'CurrentSnapshotUUID="{current.uuid}"']
    return lines


def cmd_showvminfo(registry: Registry, args: Args) -> None:
    name = args.next("the VM name or UUID")
    readable = False
    while args:
        option = args.next("option")
        if option in ("--machinereadable", "-machinereadable"):
            readable = True
        elif option not in ("--details", "-details"):
            raise syntax(f"Unknown option: {option}")
    machine = registry.find(name)
    lines = machine_readable(registry, machine)
    if readable:
        print("\n".join(lines))
        return
    for line in lines:
        key, _, value = line.partition("=")
        print(f"{key.strip(chr(34)) + ':':<24}{value.strip(chr(34))}")


def cmd_getextradata(registry: Registry, args: Args) -> None:
    target = args.next("the VM name or 'global'")
    key = args.next("the key")
    values = {} if target == "global" else registry.find(target).extradata
    if key == "enumerate":
        for name, value in values.items():
            print(f"Key: {name}, Value: {value}")
    elif key in values:
        print(f"Value: {values[key]}")
    else:
        print("No value set!")


def cmd_setextradata(registry: Registry, args: Args) -> None:
    target = args.next("the VM name or 'global'")
    key = args.next("the key")
    value = args.next("value") if args else None
    if args:
        raise syntax(f"Too many parameters: {args.items[0]}")
    if target == "global":
        return
    machine = registry.find(target)
    if value is None or value == "":
        machine.extradata.pop(key, None)
    else:
        machine.extradata[key] = value


# -- snapshots, clones, registration ----------------------------------------------------------------------------------

def cmd_snapshot(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    action = args.next("the snapshot operation")
    if action == "list":
        for snapshot in machine.snapshots:
            print(f"   Name: {snapshot.name} (UUID: {snapshot.uuid})")
        if not machine.snapshots:
            print("This machine does not have any snapshots")
        return
    if action != "take":
        raise syntax(f"Invalid parameter '{action}'")
    name = args.next("the snapshot name")
    while args:
        option = args.next("option")
        if option in ("--description", "-description", "--desc"):
            args.value(option)
        elif option not in ("--live", "--pause", "--uniquename"):
            raise syntax(f"Unknown option: {option}")
    snapshot = Snapshot(new_uuid(), name, machine.current_snapshot,
                        [Attachment(a.controller, a.port, a.device, a.type, a.medium) for a in machine.attachments])
    for item in machine.attachments:
        if item.type == "hdd" and item.medium:
            item.medium = differencing(registry, machine, item.medium).uuid
    machine.snapshots.append(snapshot)
    machine.current_snapshot = snapshot.uuid
    progress()
    print(f"Snapshot taken. UUID: {snapshot.uuid}")


def cmd_clonevm(registry: Registry, args: Args) -> None:
    source = registry.find(args.next("the VM name or UUID"))
    snapshot_name = name = basefolder = None
    options: list[str] = []
    register = False
    while args:
        option = args.next("option")
        if option == "--snapshot":
            snapshot_name = args.value(option)
        elif option == "--options":
            options += [o.strip().lower() for o in args.value(option).split(",")]
        elif option == "--name":
            name = args.value(option)
        elif option == "--basefolder":
            basefolder = args.value(option)
        elif option == "--mode":
            if args.value(option) not in ("machine", "machineandchildren", "all"):
                raise syntax("Invalid clone mode")
        elif option == "--register":
            register = True
        else:
            raise syntax(f"Unknown option: {option}")
    for option in options:
        if option not in ("link", "keepallmacs", "keepnatmacs", "keepdisknames", "keephwuuids"):
            raise syntax(f"Invalid clone options '{option}'")
    snapshot = None
    if snapshot_name is not None:
        snapshot = next((s for s in source.snapshots if snapshot_name in (s.name, s.uuid)), None)
        if snapshot is None:
            raise VBoxError(f"Could not find a snapshot named '{snapshot_name}'")
    linked = "link" in options
    if linked and snapshot is None:
        raise VBoxError("Linked clone can only be created from a snapshot")
    name = name or f"{source.name} Clone"
    folder = Path(basefolder or registry.home / "VirtualBox VMs").absolute() / name
    settings = folder / f"{name}.vbox"
    if settings.exists():
        raise VBoxError(f"Could not create machine '{name}': machine settings file '{settings}' already exists")
    clone = Machine(uuid=new_uuid(), name=name, settings_file=str(settings), ostype=source.ostype,
                    memory=source.memory, chipset=source.chipset, hwvirtex=source.hwvirtex,
                    controllers=dict(source.controllers), extradata=dict(source.extradata))
    for slot, nic in source.nics.items():
        clone.nics[slot] = NIC(nic.attachment, nic.type, nic.mac if "keepallmacs" in options else new_mac(),
                               nic.cable, nic.generic_driver, dict(nic.properties), nic.trace, nic.tracefile)
    clone.uart = UART(**vars(source.uart))
    media = registry.all_media()
    for item in (snapshot.attachments if snapshot is not None else source.attachments):
        medium = item.medium
        if item.type == "hdd" and medium:
            if linked:
                medium = differencing(registry, clone, medium).uuid
            else:
                copy_uuid = new_uuid()
                location = str(folder / f"{name}-disk{item.port}.vdi")
                capacity = media[medium].capacity_mb if medium in media else 0
                write_medium(location, copy_uuid, "", capacity)
                clone.media[copy_uuid] = Medium(copy_uuid, location, "", capacity)
                medium = copy_uuid
        clone.attachments.append(Attachment(item.controller, item.port, item.device, item.type, medium))
    Registry.save_machine(clone)
    if register:
        registry.register(clone)
    progress()
    print(f'Machine has been successfully cloned as "{name}"')


def cmd_registervm(registry: Registry, args: Args) -> None:
    path = Path(os.path.abspath(args.next("the settings file")))
    if args:
        raise syntax(f"Too many parameters: {args.items[0]}")
    if not path.is_file():
        raise VBoxError(f"Runtime error opening '{path}' for reading: -102 (File not found.).")
    registry.register(machine_from_xml(path))


def cmd_unregistervm(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    delete = False
    while args:
        option = args.next("option")
        if option in ("--delete", "-delete"):
            delete = True
        else:
            raise syntax(f"Unknown option: {option}")
    if registry.session(machine) is not None:
        raise VBoxError(f"Cannot unregister the machine '{machine.name}' while it is locked", details=LOCKED)
    registry.unregister(machine)
    if delete:
        for medium in machine.media.values():
            Path(medium.location).unlink(missing_ok=True)
        Path(machine.settings_file).unlink(missing_ok=True)
        progress()
    else:
        registry.media.update(machine.media)  # its media stay known, as VirtualBox keeps them


# -- storage -----------------------------------------------------------------------------------------------------------

def cmd_storageattach(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    controller = None
    port = device = 0
    kind = medium_arg = None
    while args:
        option = args.next("option")
        if option == "--storagectl":
            controller = args.value(option)
        elif option == "--port":
            port = integer(option, args.value(option))
        elif option == "--device":
            device = integer(option, args.value(option))
        elif option == "--type":
            kind = args.value(option)
            if kind not in ("hdd", "dvddrive", "fdd"):
                raise syntax(f"Invalid --type argument '{kind}'")
        elif option == "--medium":
            medium_arg = args.value(option)
        else:
            raise syntax(f"Unknown option: {option}")
    if controller is None:
        raise syntax("Storage controller name not specified")
    check_unlocked(registry, machine)
    if controller not in machine.controllers:
        raise VBoxError(f"Could not find a controller named '{controller}'")
    if medium_arg is None:
        raise syntax("Missing --medium argument")
    existing = machine.attachment(controller, port, device)
    if medium_arg == "none":
        if existing is None:
            raise VBoxError(f"No storage device attached to device slot {device} on port {port} of controller "
                            f"'{controller}'")
        machine.attachments.remove(existing)
        return
    if kind is None:
        raise syntax("Missing --type argument")
    medium = "" if medium_arg == "emptydrive" else open_medium(registry, medium_arg).uuid
    if existing is not None:
        machine.attachments.remove(existing)
    machine.attachments.append(Attachment(controller, port, device, kind, medium))


def cmd_storagectl(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    name = bus = None
    remove = False
    controller_type = None
    while args:
        option = args.next("option")
        if option == "--name":
            name = args.value(option)
        elif option == "--add":
            bus = args.value(option)
            if bus not in CONTROLLER_TYPES:
                raise syntax(f"Invalid --add argument '{bus}'")
        elif option == "--controller":
            controller_type = args.value(option)
        elif option == "--remove":
            remove = True
        else:
            raise syntax(f"Unknown option: {option}")
    if name is None:
        raise syntax("Storage controller name not specified")
    check_unlocked(registry, machine)
    if remove:
        if name not in machine.controllers:
            raise VBoxError(f"Could not find a storage controller named '{name}'")
        machine.controllers.pop(name)
        machine.attachments = [a for a in machine.attachments if a.controller != name]
    elif bus is not None:
        if name in machine.controllers:
            raise VBoxError(f"Storage controller named '{name}' already exists")
        machine.controllers[name] = controller_type or CONTROLLER_TYPES[bus]


def cmd_createmedium(registry: Registry, args: Args) -> None:
    if args and not args.items[0].startswith("-"):
        if args.next("medium type") != "disk":
            raise syntax("Only disks are supported by this stand-in")
    filename = None
    size = 0
    while args:
        option = args.next("option")
        if option in ("--filename", "-filename"):
            filename = args.value(option)
        elif option in ("--size", "-size"):
            size = integer(option, args.value(option))
        elif option in ("--format", "--variant"):
            args.value(option)
        else:
            raise syntax(f"Unknown option: {option}")
    if filename is None:
        raise syntax("Parameters missing: --filename")
    location = os.path.abspath(filename)
    if os.path.exists(location):
        raise VBoxError(f"Failed to create medium\nCould not create the medium storage unit '{location}'.\n"
                        "VBox status code: -105 (VERR_ALREADY_EXISTS)")
    medium_uuid = new_uuid()
    write_medium(location, medium_uuid, "", size)
    registry.media[medium_uuid] = Medium(medium_uuid, location, "", size)
    progress()
    print(f"Medium created. UUID: {medium_uuid}")


def cmd_closemedium(registry: Registry, args: Args) -> None:
    if args and args.items[0] in ("disk", "dvd", "floppy"):
        args.next("medium type")
    target = args.next("the medium")
    delete = False
    while args:
        option = args.next("option")
        if option == "--delete":
            delete = True
        else:
            raise syntax(f"Unknown option: {option}")
    medium = registry.find_medium(target)
    if medium is None:
        raise VBoxError(f"Could not find file for the medium '{os.path.abspath(target)}' (VERR_FILE_NOT_FOUND)")
    users = [m for m in registry.machines() if any(a.medium == medium.uuid for a in m.attachments)
             or any(a.medium == medium.uuid for s in m.snapshots for a in s.attachments)]
    if users:
        raise VBoxError(f"Medium '{medium.location}' cannot be closed because it is still attached to "
                        f"{len(users)} virtual machines")
    children = [m for m in registry.all_media().values() if m.parent == medium.uuid]
    if children:
        raise VBoxError(f"Cannot close medium '{medium.location}' because it has {len(children)} child media")
    registry.forget_medium(medium)
    if delete:
        Path(medium.location).unlink(missing_ok=True)


def cmd_createvm(registry: Registry, args: Args) -> None:
    name = basefolder = None
    ostype = "Other"
    register = False
    while args:
        option = args.next("option")
        if option in ("--name", "-name"):
            name = args.value(option)
        elif option == "--ostype":
            ostype = args.value(option)
        elif option == "--basefolder":
            basefolder = args.value(option)
        elif option == "--register":
            register = True
        else:
            raise syntax(f"Unknown option: {option}")
    if not name:
        raise syntax("Parameter --name is required")
    folder = Path(basefolder or registry.home / "VirtualBox VMs").absolute() / name
    settings = folder / f"{name}.vbox"
    if settings.exists():
        raise VBoxError(f"Could not create machine '{name}': machine settings file '{settings}' already exists")
    machine = Machine(uuid=new_uuid(), name=name, settings_file=str(settings), ostype=ostype)
    machine.nics[1] = NIC(attachment="nat")
    Registry.save_machine(machine)
    if register:
        registry.register(machine)
    print(f"Virtual machine '{name}' is created{' and registered' if register else ''}.")
    print(f"UUID: {machine.uuid}")
    print(f"Settings file: '{settings}'")


# -- modifyvm ----------------------------------------------------------------------------------------------------------

def rename(machine: Machine, new: str) -> None:
    """VirtualBox renames the settings file, and the folder when it is named after the machine."""
    old_folder = machine.folder
    settings = Path(machine.settings_file)
    folder = old_folder.parent / new if old_folder.name == machine.name else old_folder
    if folder != old_folder:
        if folder.exists():
            raise VBoxError(f"Could not rename the directory '{old_folder}' to '{folder}' (VERR_ALREADY_EXISTS)")
        old_folder.rename(folder)
        for medium in machine.media.values():
            if medium.location.startswith(str(old_folder) + os.sep):
                medium.location = str(folder) + medium.location[len(str(old_folder)):]
    (folder / settings.name).rename(folder / f"{new}.vbox")
    machine.settings_file = str(folder / f"{new}.vbox")
    machine.name = new


def set_to(target: object, attribute: str, value: object) -> Callable[[], None]:
    return lambda: setattr(target, attribute, value)


def cmd_modifyvm(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    check_unlocked(registry, machine)
    changes: list[Callable[[], None]] = []  # applied only when every option is valid, as VirtualBox does
    new_name = None
    while args:
        option = args.next("option")
        if option == "--memory":
            changes.append(set_to(machine, "memory", integer(option, args.value(option))))
        elif option == "--name":
            new_name = args.value(option)
        elif option == "--ostype":
            changes.append(set_to(machine, "ostype", args.value(option)))
        elif option == "--chipset":
            chipset = args.value(option)
            if chipset not in MAX_NICS:
                raise syntax(f"Invalid --chipset argument '{chipset}'")
            changes.append(set_to(machine, "chipset", chipset))
        elif option == "--hwvirtex":
            changes.append(set_to(machine, "hwvirtex", on_off(option, args.value(option))))
        elif option.startswith("--nictracefile"):
            nic = machine.nic(nic_slot(option, "--nictracefile", machine))
            changes.append(set_to(nic, "tracefile", args.value(option)))
        elif option.startswith("--nictrace"):
            nic = machine.nic(nic_slot(option, "--nictrace", machine))
            changes.append(set_to(nic, "trace", on_off(option, args.value(option))))
        elif option.startswith("--nictype"):
            slot = nic_slot(option, "--nictype", machine)
            kind = args.value(option)
            if kind not in NIC_TYPES:
                raise syntax(f"Invalid NIC type '{kind}' specified for NIC {slot}")
            changes.append(set_to(machine.nic(slot), "type", kind))
        elif option.startswith("--nicgenericdrv"):
            nic = machine.nic(nic_slot(option, "--nicgenericdrv", machine))
            changes.append(set_to(nic, "generic_driver", args.value(option)))
        elif option.startswith("--nicproperty"):
            nic = machine.nic(nic_slot(option, "--nicproperty", machine))
            key, equals, value = args.value(option).partition("=")
            if not equals or not key:
                raise syntax(f"Invalid {option.lstrip('-')} argument '{key}{equals}{value}' (name=value expected)")
            changes.append(lambda n=nic, k=key, v=value: n.properties.__setitem__(k, v))
        elif option.startswith("--nic"):
            slot = nic_slot(option, "--nic", machine)
            attachment = args.value(option)
            if attachment not in ATTACHMENTS:
                raise syntax(f"Invalid type '{attachment}' specfied for NIC {slot}")
            changes.append(set_to(machine.nic(slot), "attachment", attachment))
        elif option.startswith("--cableconnected"):
            nic = machine.nic(nic_slot(option, "--cableconnected", machine))
            changes.append(set_to(nic, "cable", on_off(option, args.value(option))))
        elif option.startswith("--macaddress"):
            nic = machine.nic(nic_slot(option, "--macaddress", machine))
            value = args.value(option)
            mac = new_mac() if value == "auto" else value.upper()
            if len(mac) != 12 or any(c not in "0123456789ABCDEF" for c in mac):
                raise syntax(f"Invalid MAC address '{value}'")
            changes.append(set_to(nic, "mac", mac))
        elif option == "--uart1":
            first = args.value(option)
            if first == "off":
                changes.append(set_to(machine.uart, "enabled", False))
            else:
                iobase, irq = integer(option, first), integer(option, args.value(option))
                changes += [set_to(machine.uart, "enabled", True), set_to(machine.uart, "iobase", f"0x{iobase:04x}"),
                            set_to(machine.uart, "irq", irq)]
        elif option == "--uartmode1":
            mode = args.value(option)
            if mode == "disconnected":
                path = ""
            elif mode in ("server", "client", "tcpserver", "tcpclient", "file"):
                path = args.value(option)
            else:
                raise syntax(f"Invalid --uartmode1 argument '{mode}'")
            changes += [set_to(machine.uart, "mode", mode), set_to(machine.uart, "path", path)]
        else:
            raise syntax(f"Invalid parameter '{option}'")
    for change in changes:
        change()
    if new_name is not None and new_name != machine.name:
        if any(m.name == new_name for m in registry.machines() if m is not machine):
            raise VBoxError(f"A machine named '{new_name}' already exists")
        rename(machine, new_name)
        registry.machine_files[machine.uuid] = machine.settings_file


# -- running VMs -------------------------------------------------------------------------------------------------------

def ask_vm(registry: Registry, machine: Machine, request: dict, timeout: float = 10.0) -> dict:
    """Send one command to a running VM process over its control socket."""
    import socket  # only controlvm needs it: every run of the stand-in starts faster without

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(registry.control_socket(machine))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data or b"{}")
    except (OSError, ValueError) as exc:
        raise VBoxError(f"The VM session of '{machine.name}' does not answer ({exc})") from None
    if reply.get("error"):
        raise VBoxError(reply["error"])
    return reply


def cmd_startvm(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    session_type = "gui"
    while args:
        option = args.next("option")
        if option in ("--type", "-type"):
            session_type = args.value(option)
            if session_type not in ("gui", "headless", "sdl", "separate"):
                raise syntax(f"Invalid session type '{session_type}'")
        else:
            raise syntax(f"Unknown option: {option}")
    if registry.session(machine) is not None:
        raise VBoxError(f"The machine '{machine.name}' is already locked by a session (or being locked or unlocked)",
                        details=LOCKED)
    media = registry.all_media()
    for item in machine.attachments:
        if item.medium and (item.medium not in media or not Path(media[item.medium].location).is_file()):
            location = media[item.medium].location if item.medium in media else item.medium
            raise VBoxError(f"Could not open the medium '{location}'.\nVD: error VERR_FILE_NOT_FOUND opening image "
                            f"file '{location}' (VERR_FILE_NOT_FOUND)")
    print(f'Waiting for VM "{machine.name}" to power on...')
    sys.stdout.flush()
    registry.sessions.mkdir(parents=True, exist_ok=True)
    for suffix in (".exit", ".state"):
        (registry.sessions / f"{machine.uuid}{suffix}").unlink(missing_ok=True)
    import subprocess  # only startvm needs it

    logs = machine.folder / "Logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "VBox.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "VBoxHeadless"), "--comment", machine.name, "--startvm", machine.uuid],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=registry.home,  # as VBoxSVC's
            start_new_session=True,  # the VM outlives this call, as VirtualBox's VM process does
        )
    write_file(registry.sessions / f"{machine.uuid}.json",
               json.dumps({"pid": process.pid, "type": session_type}).encode())
    deadline = time.monotonic() + START_TIMEOUT
    state_file = registry.sessions / f"{machine.uuid}.state"
    while not state_file.exists():
        code = process.poll()
        if code is not None:
            registry.session(machine)  # records the end
            raise VBoxError(f"The virtual machine '{machine.name}' has terminated unexpectedly during startup with "
                            f"exit code {code} ({code:#x}).  More details may be available in '{logs / 'VBox.log'}'",
                            details="code NS_ERROR_FAILURE (0x80004005), component MachineWrap, interface IMachine")
        if time.monotonic() > deadline:
            process.kill()
            raise VBoxError(f"The virtual machine '{machine.name}' did not power on within {START_TIMEOUT:.0f} s")
        time.sleep(0.01)
    machine.last_state = "poweroff"
    machine.state_changed = time.time()
    print(f'VM "{machine.name}" has been successfully started.')


def wait_gone(registry: Registry, machine: Machine, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while registry.session(machine) is not None:
        if time.monotonic() > deadline:
            raise VBoxError(f"The VM '{machine.name}' did not power off within {timeout:.0f} s")
        time.sleep(0.02)


def cmd_controlvm(registry: Registry, args: Args) -> None:
    machine = registry.find(args.next("the VM name or UUID"))
    action = args.next("the operation")
    if registry.session(machine) is None:
        raise VBoxError(f"Machine '{machine.name}' is not currently running")
    state = registry.state(machine)
    if action in ("pause", "resume", "reset", "poweroff", "acpipowerbutton"):
        if args:
            raise syntax(f"Too many parameters: {args.items[0]}")
        wanted = {"pause": "running", "resume": "paused", "acpipowerbutton": "running"}.get(action)
        if wanted is not None and state != wanted:
            raise VBoxError(f"Invalid machine state: {state.capitalize()} (must be {wanted.capitalize()})")
        ask_vm(registry, machine, {"cmd": action})
        if action == "poweroff":
            progress()
            wait_gone(registry, machine)
        return
    if action.startswith("setlinkstate"):
        slot = nic_slot(action, "setlinkstate", machine)
        value = on_off(action, args.next("on or off"))
        ask_vm(registry, machine, {"cmd": "setlinkstate", "slot": slot, "value": value})
        machine.nic(slot).cable = value
    elif action.startswith("nictracefile"):
        slot = nic_slot(action, "nictracefile", machine)
        path = args.next("the trace file")
        ask_vm(registry, machine, {"cmd": "nictracefile", "slot": slot, "value": path})
        machine.nic(slot).tracefile = path
    elif action.startswith("nictrace"):
        slot = nic_slot(action, "nictrace", machine)
        value = on_off(action, args.next("on or off"))
        ask_vm(registry, machine, {"cmd": "nictrace", "slot": slot, "value": value})
        machine.nic(slot).trace = value
    elif action.startswith("nicproperty"):
        slot = nic_slot(action, "nicproperty", machine)
        key, equals, value = args.next("name=value").partition("=")
        if not equals or not key:
            raise syntax(f"Invalid {action} argument (name=value expected)")
        ask_vm(registry, machine, {"cmd": "nicproperty", "slot": slot, "name": key, "value": value})
        machine.nic(slot).properties[key] = value
    elif action.startswith("nic"):
        slot = nic_slot(action, "nic", machine)
        attachment = args.next("the attachment type")
        if attachment not in ATTACHMENTS or attachment == "none":
            raise syntax(f"Invalid type '{attachment}' specfied for NIC {slot}")
        driver = ""
        if attachment in ("generic", "bridged", "intnet", "hostonly", "natnetwork"):
            driver = args.next(f"the {attachment} parameter")
        nic = machine.nic(slot)
        if nic.attachment == "none":
            raise VBoxError(f"Network adapter {slot} is disabled")
        ask_vm(registry, machine, {"cmd": "nic", "slot": slot, "attachment": attachment, "driver": driver})
        nic.attachment = attachment
        if attachment == "generic":
            nic.generic_driver = driver
    else:
        raise syntax(f"Invalid parameter '{action}'")
    if args:
        raise syntax(f"Too many parameters: {args.items[0]}")


def cmd_guestproperty(registry: Registry, args: Args) -> None:
    action = args.next("the guest property operation")
    machine = registry.find(args.next("the VM name or UUID"))
    if action == "enumerate":
        for key, value in machine.guestproperties.items():
            print(f"Name: {key}, value: {value}, timestamp: 0, flags: ")
        return
    name = args.next("the property name")
    if action == "get":
        value = machine.guestproperties.get(name)
        print("No value set!" if value is None else f"Value: {value}")
        return
    if action not in ("set", "unset", "delete"):
        raise syntax(f"Invalid parameter '{action}'")
    value = args.next("value") if action == "set" and args else None
    while args:
        option = args.next("option")
        if option == "--flags":
            args.value(option)
        else:
            raise syntax(f"Unknown option: {option}")
    if value is None:
        machine.guestproperties.pop(name, None)
    else:
        machine.guestproperties[name] = value
    if registry.session(machine) is not None:
        ask_vm(registry, machine, {"cmd": "guestproperty", "name": name, "value": value})


COMMANDS: dict[str, Callable[[Registry, Args], None]] = {
    "list": cmd_list, "showvminfo": cmd_showvminfo, "getextradata": cmd_getextradata,
    "setextradata": cmd_setextradata, "snapshot": cmd_snapshot, "clonevm": cmd_clonevm,
    "registervm": cmd_registervm, "unregistervm": cmd_unregistervm, "storageattach": cmd_storageattach,
    "storagectl": cmd_storagectl, "createmedium": cmd_createmedium, "createhd": cmd_createmedium,
    "closemedium": cmd_closemedium, "createvm": cmd_createvm, "modifyvm": cmd_modifyvm, "startvm": cmd_startvm,
    "controlvm": cmd_controlvm, "guestproperty": cmd_guestproperty,
}


def record(registry: Registry, argv: list[str], started: float, code: int) -> None:
    line = json.dumps({"argv": argv, "pid": os.getpid(), "start": started, "end": time.time(), "rc": code,
                       "caller": os.environ.get("VBOX_STANDIN_CALLER", "")})
    registry.home.mkdir(parents=True, exist_ok=True)
    with open(registry.home / "standin-calls.jsonl", "a") as handle:
        handle.write(line + "\n")


def main(argv: list[str]) -> int:
    started = time.time()
    args = list(argv)
    logo = True
    while args and args[0] in ("--nologo", "-nologo", "-q"):
        logo = False
        args.pop(0)
    if args and args[0] in ("--version", "-version", "-v", "-V"):
        print(VERSION)
        return 0
    if logo:
        sys.stdout.write(LOGO)
    registry = Registry()
    code = 0
    try:
        if not args:
            raise syntax("No command given (this stand-in knows: " + ", ".join(sorted(COMMANDS)) + ")")
        command = args[0]
        if os.environ.get("VBOX_STANDIN_HANG") == command:
            time.sleep(3600)
        handler = COMMANDS.get(command)
        if handler is None:
            raise syntax(f"Invalid command '{command}'")
        registry.lock()
        registry.load()
        handler(registry, Args(args[1:]))
        registry.save()
    except VBoxError as exc:
        sys.stdout.flush()
        if exc.code == 2:
            sys.stderr.write(f"VBoxManage: error: {exc.message}\nSyntax error: {exc.message}\n")
        else:
            sys.stderr.write(exc.stderr())
        code = exc.code
    finally:
        sys.stdout.flush()
        record(registry, argv, started, code)
    return code
