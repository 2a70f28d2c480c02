"""The vpcs program: version rules, the once-per-binary version cache and the command line of each version."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gns3_vpcs import program
from vpcs_helpers import fake_vpcs

from gns3core.emulator.nio import NIOTAP, NIOUDP
from gns3core.errors import EmulatorError


@pytest.mark.parametrize(("older", "newer"), [
    ("0.5b2", "0.6"), ("0.6", "0.6.1"), ("0.8b", "0.8"), ("0.8", "0.8.3"), ("0.8b", "0.8c"), ("0.6.1", "0.8b"),
    ("0.5b1", "0.5b2"),
])
def test_version_order(older: str, newer: str) -> None:
    assert program.version_key(older) < program.version_key(newer)


@pytest.mark.parametrize(("version", "supported", "relay_flag"), [
    ("0.5b2", True, False), ("0.6", True, False), ("0.6.1", True, False), ("0.8b", True, True),
    ("0.8.3", True, True), ("1.0", True, True), ("0.5b1", False, False), ("0.7", False, False),
    ("0.6.2", False, False),
])
def test_supported_versions(version: str, supported: bool, relay_flag: bool) -> None:
    assert program.is_supported(version) is supported
    assert program.takes_relay_flag(version) is relay_flag


def test_version_is_read_from_the_banner() -> None:
    banner = b"\nWelcome to Virtual PC Simulator, version 0.5b2\nDedicated to Daling.\n"
    assert program.parse_version(banner) == "0.5b2"
    assert program.parse_version(b"usage: vpcs [options]") is None


def launch(version: str, nio, script: bool = False) -> program.Launch:
    return program.Launch(path="/usr/bin/vpcs", version=version, console=5001, mac_id=3, nio=nio,
                          rhost="127.0.0.1", script=script)


def test_command_line_05b2_udp_with_script() -> None:
    nio = NIOUDP(lport=10001, rhost="localhost", rport=10002)
    argv = program.command_line(launch("0.5b2", nio, script=True))
    assert argv == ["/usr/bin/vpcs", "-p", "5001", "-m", "3", "-i", "1", "-F", "-s", "10001", "-c", "10002",
                    "-t", "127.0.0.1", "startup.vpc"]


def test_command_line_08_disables_relay_and_tap_mode() -> None:
    argv = program.command_line(launch("0.8.3", NIOTAP(tap_device="tap7")))
    assert argv == ["/usr/bin/vpcs", "-p", "5001", "-m", "3", "-i", "1", "-F", "-R", "-e", "-d", "tap7"]
    assert "-R" not in program.command_line(launch("0.6.1", NIOTAP(tap_device="tap7")))


async def test_version_asked_once_per_binary(tmp_path: Path) -> None:
    binary = fake_vpcs(tmp_path, "Welcome to Virtual PC Simulator, version 0.8.3")
    versions = await asyncio.gather(*(program.detect_version(str(binary)) for _ in range(5)))
    assert versions == ["0.8.3"] * 5
    assert await program.detect_version(str(binary)) == "0.8.3"
    assert (tmp_path / "vpcs.asked").read_text().count("asked") == 1


async def test_unsupported_and_unknown_versions(tmp_path: Path) -> None:
    old = fake_vpcs(tmp_path, "Welcome to Virtual PC Simulator, version 0.7", name="old")
    with pytest.raises(EmulatorError, match="version must be >= 0.8b or between 0.5b2 and 0.6.1.*0.7"):
        await program.detect_version(str(old))
    mute = fake_vpcs(tmp_path, "nothing to see", name="mute")
    with pytest.raises(EmulatorError, match=f"Could not determine the VPCS version for {mute}"):
        await program.detect_version(str(mute))


def test_resolve_path_errors(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="VPCS program '/nonexistent/vpcs' is not accessible"):
        program.resolve_path("/nonexistent/vpcs")
    plain = tmp_path / "vpcs"
    plain.write_text("not a program")
    with pytest.raises(EmulatorError, match=f"VPCS program '{plain}' is not executable"):
        program.resolve_path(str(plain))
    with pytest.raises(EmulatorError, match="not on PATH"):
        program.resolve_path("no-such-vpcs-name")


def test_probe_reports_path_and_version(vpcs_binary: str) -> None:
    from gns3_vpcs.manager import VPCSManager

    from gns3core.config import Config

    status = VPCSManager.probe(Config(files=[], overrides={}))
    assert status.found and status.path == vpcs_binary
    assert status.version is not None and program.is_supported(status.version)
    missing = VPCSManager.probe(Config(files=[], overrides={"VPCS": {"vpcs_path": "/nonexistent/vpcs"}}))
    assert not missing.found and "/nonexistent/vpcs" in missing.message
