"""The command line and the small parsers, read without starting qemu."""

import subprocess

import pytest
from gns3_qemu.binaries import parse_version, platform_of
from gns3_qemu.command import (
    Disk,
    LaunchPlan,
    adapter_mac,
    build_command,
    clean_options,
    default_mac,
    network_options,
    wants_no_kvm,
)
from gns3_qemu.kvm import cpu_has_virtualization
from gns3_qemu.monitor import clean_reply, status_word

from gns3core.emulator.nio import NIONAT, NIOTAP, NIOUDP
from gns3core.errors import EmulatorError


def test_macs_follow_the_spec_derivation() -> None:
    base = default_mac("a2b4c6d8-0000-4000-8000-00000000a1b2")
    assert base == "00:00:ab:a1:b2:00"
    assert [adapter_mac(base, n) for n in range(3)] == ["00:00:ab:a1:b2:00", "00:00:ab:a1:b2:01",
                                                        "00:00:ab:a1:b2:02"]
    # The base plus the index as one 48-bit number, carrying to the left: released 1.5.x fixed the seed, which read
    # the last two characters as a decimal number ("15" + 1 gave 0x10) and failed on hex letters (§9, adopted).
    assert adapter_mac("00:11:22:33:44:15", 1) == "00:11:22:33:44:16"
    assert adapter_mac("00:11:22:33:44:fe", 3) == "00:11:22:33:45:01"
    assert adapter_mac("00:11:22:33:44:00", 300) == "00:11:22:33:45:2c"
    assert adapter_mac("ff:ff:ff:ff:ff:ff", 1) == "00:00:00:00:00:00"


def test_modern_network_options_keep_unlinked_nics() -> None:
    nios = [NIOUDP(lport=20001, rhost="127.0.0.1", rport=20002), None, NIOTAP(tap_device="tap0"), NIONAT()]
    options = network_options(nios, "00:00:ab:00:01:00", "e1000", legacy=False, local_host="127.0.0.1")
    assert options == [
        "-device", "e1000,mac=00:00:ab:00:01:00,netdev=gns3-0",
        "-netdev", "socket,id=gns3-0,udp=127.0.0.1:20002,localaddr=127.0.0.1:20001",
        "-device", "e1000,mac=00:00:ab:00:01:01",
        "-device", "e1000,mac=00:00:ab:00:01:02,netdev=gns3-2",
        "-netdev", "tap,id=gns3-2,ifname=tap0,script=no,downscript=no",
        "-device", "e1000,mac=00:00:ab:00:01:03,netdev=gns3-3",
        "-netdev", "user,id=gns3-3",
    ]


def test_legacy_network_options_use_no_vlan() -> None:
    nios = [NIOUDP(lport=20001, rhost="127.0.0.1", rport=20002), None]
    options = network_options(nios, "00:00:ab:00:01:00", "rtl8139", legacy=True, local_host="127.0.0.1")
    assert not any("vlan=" in option for option in options)
    assert options == [
        "-net", "nic,macaddr=00:00:ab:00:01:00,model=rtl8139,netdev=gns3-0",
        "-netdev", "socket,id=gns3-0,udp=127.0.0.1:20002,localaddr=127.0.0.1:20001",
        "-net", "nic,macaddr=00:00:ab:00:01:01,model=rtl8139,netdev=gns3-1",
        "-netdev", "hubport,id=gns3-1,hubid=1",
    ]


def _plan(**changes) -> LaunchPlan:
    values = dict(qemu_path="/usr/bin/qemu-system-x86_64", name="vm,1", ram=128, cpus=2, boot_priority="c",
                  console_type="telnet", console_host="127.0.0.1", console=5000)
    values.update(changes)
    return LaunchPlan(**values)


def test_command_order_and_console() -> None:
    argv = build_command(_plan(disks=[Disk("/img/a,b.qcow2", "virtio", 0)], kernel="/k", initrd="/i",
                               kernel_command_line="console=ttyS0 x=1", monitor=("127.0.0.1", 4444),
                               options=["-rtc", "base=utc"]))
    assert argv[:9] == ["/usr/bin/qemu-system-x86_64", "-name", "vm,,1", "-m", "128M", "-smp", "cpus=2",
                        "-accel", "tcg"]
    assert "file=/img/a,,b.qcow2,if=virtio,index=0,media=disk" in argv
    assert argv.index("-initrd") < argv.index("-kernel") < argv.index("-append")
    assert argv[argv.index("-append") + 1] == "console=ttyS0 x=1"
    assert argv[argv.index("-serial") + 1] == "telnet:127.0.0.1:5000,server=on,wait=off"
    assert argv[argv.index("-monitor") + 1] == "tcp:127.0.0.1:4444,server=on,wait=off"
    assert argv[-3:] == ["none", "-rtc", "base=utc"]
    assert "-no-kvm" not in argv and "-enable-kvm" not in argv


def test_vnc_console_and_kvm() -> None:
    argv = build_command(_plan(console_type="vnc", console=5905, kvm=True))
    assert argv[argv.index("-vnc") + 1] == "127.0.0.1:5"
    assert "-enable-kvm" in argv and "-accel" not in argv and "-serial" not in argv
    assert "-machine" not in argv
    argv = build_command(_plan(kvm=True, smm_off=True))  # x86_64 under KVM with Qemu >= 2.4, as GNS3 1.5.x
    assert argv[argv.index("-enable-kvm") + 1:argv.index("-enable-kvm") + 3] == ["-machine", "smm=off"]
    assert "-machine" not in build_command(_plan(kvm=False, smm_off=True))


def test_options_never_pass_no_kvm() -> None:
    tokens = ["-no-kvm", "-icount", "1", "-enable-kvm"]
    assert wants_no_kvm(tokens)
    assert clean_options(tokens, kvm=False) == ["-icount", "1"]
    assert clean_options(["-enable-kvm"], kvm=True) == ["-enable-kvm"]
    assert "-accel" not in build_command(_plan(options=["-machine", "accel=tcg"]))


def test_the_built_command_line_is_accepted_by_qemu(qemu_binary: str) -> None:
    """qemu parses the whole line (network options included) and stops at once in a paused machine."""
    nios = [NIOUDP(lport=1, rhost="127.0.0.1", rport=2), None]
    for legacy in (False, True):
        plan = _plan(qemu_path=qemu_binary, console=0, options=["-S"],
                     network=network_options(nios, "00:00:ab:00:01:00", "e1000", legacy, "127.0.0.1"))
        argv = [a if a != "telnet:127.0.0.1:0,server=on,wait=off" else "null" for a in build_command(plan)]
        proc = subprocess.Popen([*argv, "-monitor", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out, err = proc.communicate(b"info network\nquit\n", timeout=30)
        assert proc.returncode == 0, err.decode()
        text = out.decode(errors="replace")
        assert "00:00:ab:00:01:00" in text and "00:00:ab:00:01:01" in text, text


def test_parsers() -> None:
    assert parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)") == "7.2.22"
    assert parse_version("qemu-img version 2.4.0-rc1, Copyright") == "2.4.0-rc1"
    assert parse_version("nothing here") is None
    assert platform_of("/usr/bin/qemu-system-x86_64") == "x86_64"
    assert platform_of("/usr/bin/qemu-system-x86_64-microvm") == "x86_64"
    assert platform_of("qemu-kvm") == "x86_64"
    assert platform_of("C:/qemu/qemu-system-i386w.exe") == "i386"
    with pytest.raises(EmulatorError, match="Platform foo is unknown"):
        platform_of("qemu-system-foo")
    assert cpu_has_virtualization("flags\t\t: fpu vme svm sse\n")
    assert not cpu_has_virtualization("flags\t\t: fpu vme hypervisor\n")
    reply = clean_reply(b"info status\r\n\x1b[K\x1b[Dinfo status\r\nVM status: paused\r\n", "info status")
    assert reply == "VM status: paused"
    assert status_word(reply) == "paused"
    assert status_word("VM status: paused (suspended)") == "paused"
