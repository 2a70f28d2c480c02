"""Qemu emulator plugin for gns3core: API v1 Qemu VMs driven with today's qemu (7.x)."""

__version__ = "0.1.0"
