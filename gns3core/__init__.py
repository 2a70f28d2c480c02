"""gns3core: the core of a GNS3 API v1 compatible network-emulation server."""

__version__ = "0.1.0"

from gns3core.hookspecs import hookimpl  # noqa: E402  (one import for plugin authors)

__all__ = ["__version__", "hookimpl"]
