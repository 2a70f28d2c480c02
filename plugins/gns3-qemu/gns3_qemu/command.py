"""The Qemu command line, built from plain values so tests can read it without starting anything.

Written for today's Qemu (7.2): no `-no-kvm`, no `vlan=`, modern `server=on,wait=off` chardev flags.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from gns3core.emulator.nio import NIO, NIONAT, NIOTAP, NIOUDP
from gns3core.errors import EmulatorError
from gns3core.macs import GNS3, MacBase

# Options a client may put in `options` that this Qemu refuses or that would hang a start here.
KVM_OPT_OUT = ("-no-kvm", "-icount")
KVM_FLAGS = ("-enable-kvm",)


def default_mac(vm_id: str) -> str:
    """GNS3's base MAC of a VM, `00:00:ab:<id[-4:-2]>:<id[-2:]>:00` (what `[Server] mac_base = gns3` gives; by default
    the manager draws from the server's own base instead)."""
    return MacBase(None, GNS3).qemu(vm_id)


def adapter_mac(base_mac: str, index: int) -> str:
    """The MAC of adapter `index`: the base MAC plus the index, as one 48-bit number (carrying into the bytes to
    the left), as released GNS3 1.5.x computes it. (The seed read the last two hex digits as a decimal number and
    failed on a base ending in a letter.)"""
    value = (int(base_mac.replace(":", ""), 16) + index) & 0xFFFFFFFFFFFF
    digits = f"{value:012x}"
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def escape_option_value(value: str) -> str:
    """Qemu splits option values on commas; a literal comma is written twice."""
    return value.replace(",", ",,")


def network_options(nios: list[NIO | None], base_mac: str, adapter_type: str, legacy: bool,
                    local_host: str) -> list[str]:
    """One NIC per adapter, whether or not it has a link; linked NICs get a backend named `gns3-<n>`.

    Legacy networking (`-net nic`) keeps each NIC on its own hub as the removed `vlan=<n>` did: a NIC without a link
    gets a private hub port, so unlinked NICs never hear each other.
    """
    options: list[str] = []
    for index, nio in enumerate(nios):
        mac = adapter_mac(base_mac, index)
        netdev_id = f"gns3-{index}"
        backend = _backend(nio, netdev_id, local_host)
        if legacy:
            if backend is None:
                backend = f"hubport,id={netdev_id},hubid={index}"
            options += ["-net", f"nic,macaddr={mac},model={adapter_type},netdev={netdev_id}", "-netdev", backend]
        elif backend is None:
            options += ["-device", f"{adapter_type},mac={mac}"]
        else:
            options += ["-device", f"{adapter_type},mac={mac},netdev={netdev_id}", "-netdev", backend]
    return options


def _backend(nio: NIO | None, netdev_id: str, local_host: str) -> str | None:
    if nio is None:
        return None
    if isinstance(nio, NIOUDP):
        return f"socket,id={netdev_id},udp={nio.rhost}:{nio.rport},localaddr={local_host}:{nio.lport}"
    if isinstance(nio, NIOTAP):
        return f"tap,id={netdev_id},ifname={escape_option_value(nio.tap_device)},script=no,downscript=no"
    if isinstance(nio, NIONAT):
        return f"user,id={netdev_id}"
    raise EmulatorError(f"NIO of type {nio.type} is not supported")


def split_options(options: str) -> list[str]:
    """The free-text `options` field, split with shell rules (never run through a shell); 409 when unbalanced."""
    try:
        return shlex.split(options)
    except ValueError as exc:
        shown = options if len(options) <= 200 else options[:200] + "..."
        raise EmulatorError(f"Invalid QEMU options '{shown}': {exc}") from exc


def wants_no_kvm(tokens: list[str]) -> bool:
    return any(token in KVM_OPT_OUT for token in tokens)


def clean_options(tokens: list[str], kvm: bool) -> list[str]:
    """Drop `-no-kvm` (Qemu 7.2 refuses it), and `-enable-kvm` when KVM is not usable here."""
    kept = [t for t in tokens if t != "-no-kvm"]
    if not kvm:
        kept = [t for t in kept if t not in KVM_FLAGS]
    return kept


def mentions_accelerator(tokens: list[str]) -> bool:
    return any(t in ("-accel", "-enable-kvm") or "accel=" in t for t in tokens)


@dataclass
class Disk:
    path: str
    interface: str
    index: int


@dataclass
class LaunchPlan:
    """Everything the command line depends on, resolved beforehand (paths absolute, ports chosen)."""

    qemu_path: str
    name: str
    ram: int
    cpus: int | None
    boot_priority: str
    console_type: str
    console_host: str
    console: int
    kvm: bool = False
    smm_off: bool = False  # KVM on x86_64 with Qemu >= 2.4: System Management Mode off, as GNS3 1.5.x passes it
    cdrom: str | None = None
    disks: list[Disk] = field(default_factory=list)
    initrd: str | None = None
    kernel: str | None = None
    kernel_command_line: str = ""
    monitor: tuple[str, int] | None = None
    network: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def build_command(plan: LaunchPlan) -> list[str]:
    """The argument vector, in the order API v1 servers use (backends §2.1)."""
    argv = [plan.qemu_path, "-name", escape_option_value(plan.name), "-m", f"{plan.ram}M"]
    if plan.cpus:
        argv += ["-smp", f"cpus={plan.cpus}"]
    if plan.kvm:
        argv += ["-enable-kvm"]
        if plan.smm_off:
            argv += ["-machine", "smm=off"]
    elif not mentions_accelerator(plan.options):
        argv += ["-accel", "tcg"]
    argv += ["-boot", f"order={plan.boot_priority}"]
    if plan.cdrom:
        argv += ["-cdrom", plan.cdrom]
    for disk in plan.disks:
        argv += ["-drive", f"file={escape_option_value(disk.path)},if={disk.interface},index={disk.index},media=disk"]
    if plan.initrd:
        argv += ["-initrd", plan.initrd]
    if plan.kernel:
        argv += ["-kernel", plan.kernel]
    if plan.kernel_command_line:
        argv += ["-append", plan.kernel_command_line]
    if plan.console_type == "vnc":
        argv += ["-vnc", f"{plan.console_host}:{plan.console - 5900}"]
    else:
        argv += ["-serial", f"telnet:{plan.console_host}:{plan.console},server=on,wait=off", "-display", "none"]
    if plan.monitor is not None:
        host, port = plan.monitor
        argv += ["-monitor", f"tcp:{host}:{port},server=on,wait=off"]
    argv += ["-net", "none", *plan.network, *plan.options]
    return argv
