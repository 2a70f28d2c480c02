"""IOU's files, tested without running anything: licence keys, NVRAM import/export (both header formats), NETMAP."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess

import pytest
from gns3_iou import files, licence, nvram

from gns3core.errors import EmulatorError
from gns3core.testing import require

STARTUP = b"hostname R1\n!\ninterface Ethernet0/0\n ip address 10.0.0.1 255.255.255.0\n!\nend\n"
PRIVATE = b"private-config line\nend\n"


def test_licence_key_of_a_known_host():
    # Derived with printf | md5sum from the spec's pads: 0x007f0101 + sum(ord, "gns3vm") = 0x007f035f.
    assert licence.licence_key("gns3vm", "007f0101") == "fe8a48237f49c1b8"
    assert licence.licence_key("gns3vm", "007f0102") != "fe8a48237f49c1b8"


def test_licence_check_messages(tmp_path):
    key = licence.licence_key("host-a", "0a0b0c0d")
    path = tmp_path / "iourc"
    cases = {
        f"[license]\nhost-a = {key};\n": None,
        f"[license]\nHOST-A = {key.upper()};\n": None,  # keys are read case-insensitively, as IOU servers did
        f"[license]\nother = {key};\n": 'Hostname "host-a" not found in iourc file',
        f"[license]\nhost-a = {key}\n": "IOU key not ending with ; in iourc file",
        f"[license]\nhost-a = {key}0;\n": "IOU key length is not 16 characters in iourc file",
        "[license]\nhost-a = 0123456789abcdef;\n": "Invalid IOU license key 0123456789abcdef detected in iourc file",
        "[other]\nhost-a = 1;\n": "has no [license] section",
        "no section at all\n": "Could not parse iourc file",
    }
    for text, message in cases.items():
        path.write_text(text)
        if message is None:
            licence.check_licence(path, "host-a", "0a0b0c0d")
        else:
            with pytest.raises(EmulatorError) as error:
                licence.check_licence(path, "host-a", "0a0b0c0d")
            assert message in error.value.message, text
            assert str(path) in error.value.message


def test_host_id_is_what_hostid_prints():
    if shutil.which("hostid"):
        assert licence.host_id() == subprocess.run(["hostid"], capture_output=True, text=True).stdout.strip()
    assert len(licence.host_id()) == 8


def test_iourc_lookup_order(tmp_path, monkeypatch):
    home, vm_dir, temp = tmp_path / "home", tmp_path / "vm", tmp_path / "temp"
    for directory in (home, vm_dir, temp):
        directory.mkdir()
    monkeypatch.setenv("HOME", str(home))
    content = temp / "iourc"
    assert licence.find_iourc(None, vm_dir, content) is None
    content.write_text("x")
    assert licence.find_iourc(None, vm_dir, content).origin == "iourc_content"
    (vm_dir / "iourc").write_text("x")
    assert licence.find_iourc(None, vm_dir, content).path == vm_dir / "iourc"
    (home / ".iourc").write_text("x")
    assert licence.find_iourc(None, vm_dir, content).path == home / ".iourc"
    assert licence.find_iourc("/etc/gns3/iourc", vm_dir, content).origin == "configuration"


def _sum_is_valid(image: bytes) -> bool:
    half = image[:len(image) // 2]
    total = sum(struct.unpack(f">{len(half) // 2}H", half))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_nvram_round_trip_gives_the_same_text():
    image = nvram.import_configs(b"", STARTUP, PRIVATE, 128 * 1024)
    assert len(image) == 128 * 1024
    assert image[:2] == b"\xab\xcd" and struct.unpack_from(">HHHH", image)[1::2] == (1, 0x0F04)
    assert _sum_is_valid(image)
    assert nvram.export_configs(image) == (STARTUP, PRIVATE)
    again = nvram.import_configs(image, STARTUP, PRIVATE, 128 * 1024)
    assert again == image


def test_nvram_import_keeps_the_rest_and_the_ios_version():
    old = bytearray(nvram.import_configs(b"", b"x" * 3000, PRIVATE, 64 * 1024))
    struct.pack_into(">H", old, 6, 0x0F00)  # an older IOS wrote it
    file_block = b"\xdc\xba" + bytes(range(256)) * 4
    old[32 * 1024 - len(file_block):32 * 1024] = file_block  # a file sector at the top of the first half
    old[40000:40004] = b"tail"
    image = nvram.import_configs(bytes(old), STARTUP, None, 128 * 1024)
    assert len(image) == 64 * 1024  # an existing NVRAM keeps its size
    assert image[32 * 1024 - len(file_block):32 * 1024] == file_block
    assert image[40000:40004] == b"tail"
    assert struct.unpack_from(">H", image, 6)[0] == 0x0F00
    assert _sum_is_valid(image)
    # IOS <= 15.0 pads 4 more bytes after a config whose length is not a multiple of 4.
    startup, private = nvram.export_configs(nvram.import_configs(bytes(old), STARTUP + b"!", PRIVATE, 0))
    assert (startup, private) == (STARTUP + b"!", PRIVATE)
    raw = nvram.import_configs(bytes(old), STARTUP + b"!", PRIVATE, 0)
    offset = (36 + len(STARTUP) + 1 + 3) // 4 * 4
    assert raw[offset:offset + 2] == b"\0\0" and raw[offset + 4:offset + 6] == b"\xfe\xdc"


def test_nvram_too_small_for_the_configs():
    with pytest.raises(nvram.NvramError, match="raise the VM's nvram"):
        nvram.import_configs(b"", b"x" * 5000, None, 8 * 1024)


def test_nvram_export_of_a_compressed_startup_config():
    require(shutil.which("compress") is not None, "compress is not installed (apt-get install ncompress)")
    rng = random.Random(7)
    text = "".join(f"interface Ethernet{rng.randrange(16)}/{rng.randrange(4)}\n description {rng.random()}\n!\n"
                   for _ in range(2000)).encode()
    for bits in (10, 12, 16):
        packed = subprocess.run(["compress", "-c", "-f", "-b", str(bits)], input=text, capture_output=True,
                                check=True).stdout
        image = bytearray(nvram.import_configs(b"", packed, PRIVATE, 512 * 1024))
        struct.pack_into(">H", image, 2, nvram.FORMAT_LZC)
        assert nvram.export_configs(bytes(image)) == (text, PRIVATE)


def test_nvram_damaged_or_empty():
    assert nvram.export_configs(bytes(1024)) == (None, None)
    with pytest.raises(nvram.NvramError):
        nvram.export_configs(b"\xab\xcd")
    broken = bytearray(nvram.import_configs(b"", STARTUP, None, 8 * 1024))
    struct.pack_into(">I", broken, 16, 100000)
    with pytest.raises(nvram.NvramError, match="past the end"):
        nvram.export_configs(bytes(broken))
    with pytest.raises(nvram.NvramError, match="LZC header"):
        nvram.lzc_decompress(b"plain text")


def test_netmap_and_saved_configs(tmp_path):
    lines = files.netmap_text(7).splitlines()
    assert len(lines) == 64
    assert lines[0] == "519:0/0    7:0/0" and lines[-1] == "519:15/3    7:15/3"
    (tmp_path / files.STARTUP_CONFIG).write_bytes(STARTUP)
    files.push_configs(tmp_path, 7, 128)
    assert files.nvram_configs(tmp_path, 7) == (STARTUP.decode(), None)
    image = nvram.import_configs(files.nvram_path(tmp_path, 7).read_bytes(), STARTUP.replace(b"\n", b"\r\n"),
                                 b"\nend\n", 0)
    files.nvram_path(tmp_path, 7).write_bytes(image)
    (tmp_path / files.STARTUP_CONFIG).unlink()
    files.save_configs(tmp_path, 7)
    assert (tmp_path / files.STARTUP_CONFIG).read_bytes() == STARTUP  # carriage returns removed
    assert not (tmp_path / files.PRIVATE_CONFIG).exists()  # a private config that is only "end" is not written
    (tmp_path / "nvram_00003").write_bytes(image)
    files.nvram_path(tmp_path, 7).unlink()
    files.adopt_files(tmp_path, 9)
    assert files.nvram_path(tmp_path, 9).exists()
