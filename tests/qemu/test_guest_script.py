"""The guest builder as users run it: `python -m gns3_qemu.guest DIR` (docs/qemu.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gns3_qemu import guest as guest_builder


def test_usage_is_explained() -> None:
    out = subprocess.run([sys.executable, "-m", "gns3_qemu.guest"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "usage: python -m gns3_qemu.guest DIR" in out.stderr


def test_writes_the_kernel_and_initrd(guest_files: guest_builder.Guest, tmp_path: Path) -> None:
    target = tmp_path / "guest"
    out = subprocess.run([sys.executable, "-m", "gns3_qemu.guest", str(target)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(target / "vmlinuz"), str(target / "initrd.gz")]
    assert (target / "vmlinuz").read_bytes() == guest_files.kernel.read_bytes()
    assert (target / "initrd.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert not list(target.glob("*.tmp"))
