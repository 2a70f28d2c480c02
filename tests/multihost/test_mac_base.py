"""`[Server] mac_base`: the server identity behind the default, the layout each kind draws from, and GNS3's addresses
on request."""

from __future__ import annotations

import re

import pytest

from gns3core.errors import Conflict
from gns3core.macs import IDENTITY_FILE, MacBase, base_from_identity, parse_mac_base, resolve_mac_base

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
VM_ID = "0f2a8f21-7b3c-4a5d-9e10-1234567890ab"


def test_parse_mac_base() -> None:
    assert parse_mac_base(None) is None and parse_mac_base("") is None and parse_mac_base(" Auto ") is None
    assert parse_mac_base("GNS3") == "gns3"
    assert parse_mac_base("02:4A:7c") == bytes((0x02, 0x4A, 0x7C))
    assert parse_mac_base("0e-00-01") == bytes((0x0E, 0x00, 0x01))
    for bad in ("02:4a", "02:4a:7c:00", "zz:00:00", "00:50:79:66:68"):
        with pytest.raises(Conflict, match="use auto .* gns3 .* three bytes"):
            parse_mac_base(bad)
    with pytest.raises(Conflict, match="multicast"):
        parse_mac_base("03:00:00")


def test_identity_is_created_once_and_kept(tmp_path) -> None:
    projects = tmp_path / "projects"
    first = resolve_mac_base("", projects)
    identity_file = projects / IDENTITY_FILE
    assert identity_file.is_file() and first.origin == f"server identity ({identity_file})"
    assert resolve_mac_base("auto", projects) == first  # read back, not made anew
    assert first.prefix == base_from_identity(identity_file.read_text().strip().encode())
    assert first.prefix[0] & 0x03 == 0x02  # locally administered, unicast
    assert sorted(p.name for p in projects.iterdir()) == [IDENTITY_FILE]  # no temporary file left


def test_two_servers_get_different_bases(tmp_path) -> None:
    bases = {resolve_mac_base("", tmp_path / f"server{n}").prefix for n in range(20)}
    assert len(bases) == 20


def test_an_empty_identity_file_is_replaced(tmp_path) -> None:
    (tmp_path / IDENTITY_FILE).write_text("")
    base = resolve_mac_base("", tmp_path)
    assert (tmp_path / IDENTITY_FILE).read_text().strip()
    assert base == resolve_mac_base("", tmp_path)


def test_unwritable_projects_directory_falls_back_to_host_data(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    base = resolve_mac_base("", blocker / "projects")
    assert base.origin == "server identity (host data)" and base.prefix[0] & 0x03 == 0x02
    assert resolve_mac_base("", blocker / "projects") == base  # stable
    assert "deriving it from the host" in caplog.text


def test_layout_of_each_kind() -> None:
    base = MacBase(bytes((0x0A, 0xB1, 0xC2)), "test")
    assert base.vpcs(0) == "0a:b1:c2:00:00:00" and base.vpcs(254) == "0a:b1:c2:00:00:fe"
    qemu = base.qemu(VM_ID)
    assert MAC.match(qemu) and qemu.startswith("0a:b1:c2:") and qemu.endswith(":00")
    assert 0x10 <= int(qemu.split(":")[3], 16) <= 0xFF  # never in the VPCS or Dynamips planes
    assert base.qemu(VM_ID) == qemu  # stable for the VM id
    other = base.qemu(VM_ID, taken={qemu})
    assert other != qemu and other.startswith("0a:b1:c2:")
    assert base.dynamips(1) == "0ab1.c201.0100" and base.dynamips(300) == "0ab1.c202.2c00"
    assert str(base) == "0a:b1:c2"


def test_gns3_addresses_on_request(tmp_path) -> None:
    base = resolve_mac_base("gns3", tmp_path)
    assert base.gns3 and str(base) == "gns3"
    assert base.vpcs(0) == "00:50:79:66:68:00" and base.vpcs(17) == "00:50:79:66:68:11"
    assert base.qemu(VM_ID) == "00:00:ab:90:ab:00"
    assert base.dynamips(1) is None
    assert not (tmp_path / IDENTITY_FILE).exists()  # no identity needed


async def test_server_mac_base_follows_the_configuration(gns3_server, tmp_path) -> None:
    derived = gns3_server.mac_base
    assert not derived.gns3 and (tmp_path / "projects" / IDENTITY_FILE).is_file()
    gns3_server.config.set("Server", "mac_base", "02:00:5e")
    assert str(gns3_server.mac_base) == "02:00:5e"
    gns3_server.config.set("Server", "mac_base", "gns3")
    assert gns3_server.mac_base.gns3
    gns3_server.config.set("Server", "mac_base", "nonsense")
    with pytest.raises(Conflict, match="Invalid \\[Server\\] mac_base 'nonsense'"):
        _ = gns3_server.mac_base
    gns3_server.config.set("Server", "mac_base", "")
    assert gns3_server.mac_base == derived
