"""VPCS plugin for gns3core: the API v1 `vpcs` emulator kind, driving the real vpcs program (0.5b2, 0.6.1, 0.8+)."""

__version__ = "0.1.0"
