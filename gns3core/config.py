"""Server configuration: the INI files of API v1, with command-line values always on top."""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# The API v1 release a GNS3 client must see to accept the server (1.5.4 was the last v1 release).
DEFAULT_COMPAT_VERSION = "1.5.4"
# Projects open at once; each costs little (measured by bench/drills.py), the cap keeps a client loop from piling
# them up without end.
DEFAULT_MAX_PROJECTS = 1000

SERVER_DEFAULTS: dict[str, str] = {
    "host": "127.0.0.1",
    "port": "8000",
    "local": "false",
    "allow_remote_console": "false",
    "console_start_port_range": "2001",
    "console_end_port_range": "7000",
    "udp_start_port_range": "10000",
    "udp_end_port_range": "20000",
    "projects_path": "~/GNS3/projects",
    "images_path": "~/GNS3/images",
    "auth": "false",
    "user": "",
    "password": "",
    "monitor_host": "127.0.0.1",
    "udp_host": "",
    "mac_base": "",
    "compatibility_version": DEFAULT_COMPAT_VERSION,
    "debug": "false",
    "quiet": "false",
    "record": "",
    "allowed_origins": "",
    "allowed_hosts": "",
    "allow_remote_without_auth": "false",
    "max_projects": str(DEFAULT_MAX_PROJECTS),
}

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


def default_search_list() -> list[Path]:
    """The files read when no --config is given, first to last (a later file wins)."""
    home = Path.home()
    return [
        Path.cwd() / "gns3_server.conf",
        home / ".config" / "GNS3" / "gns3_server.conf",
        home / ".config" / "GNS3.conf",
        Path("/etc/xdg/GNS3/gns3_server.conf"),
        Path("/etc/xdg/GNS3.conf"),
    ]


def parse_bool(value: str | bool | None, default: bool = False) -> bool:
    """INI booleans in every usual spelling; anything unknown falls back to the default."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


class Section:
    """Read-only view of one INI section, with typed getters and defaults."""

    def __init__(self, values: dict[str, str], defaults: dict[str, str] | None = None) -> None:
        self._values = values
        self._defaults = defaults or {}

    def get(self, key: str, default: str | None = None) -> str | None:
        if key in self._values:
            return self._values[key]
        if default is not None:
            return default
        return self._defaults.get(key)

    def getbool(self, key: str, default: bool = False) -> bool:
        raw = self.get(key)
        return parse_bool(raw, default)

    def getint(self, key: str, default: int = 0) -> int:
        raw = self.get(key)
        try:
            return int(str(raw).strip())
        except (TypeError, ValueError):
            return default

    def getpath(self, key: str, default: str | None = None) -> Path | None:
        raw = self.get(key, default)
        if not raw:
            return None
        return Path(os.path.expanduser(raw))

    def __contains__(self, key: str) -> bool:
        return key in self._values or key in self._defaults

    def as_dict(self) -> dict[str, str]:
        merged = dict(self._defaults)
        merged.update(self._values)
        return merged


class Config:
    """Every configuration value the server uses, re-readable at run time.

    Values given on the command line are kept apart and re-applied after each reload, so they always win.
    """

    def __init__(self, files: Iterable[Path | str] | None = None, overrides: dict[str, dict[str, str]] | None = None):
        self.files = [Path(f) for f in files] if files is not None else default_search_list()
        self.overrides = {sec: dict(vals) for sec, vals in (overrides or {}).items()}
        self.loaded_files: list[Path] = []
        self._mtimes: dict[Path, float] = {}
        self._data: dict[str, dict[str, str]] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read every file of the search list that exists, then put command-line values back on top."""
        parser = configparser.RawConfigParser()
        parser.optionxform = str  # keys keep their case, like the reference
        loaded: list[Path] = []
        for path in self.files:
            if not path.is_file():
                continue
            try:
                parser.read(path, encoding="utf-8")
                loaded.append(path)
            except (configparser.Error, OSError, UnicodeDecodeError) as exc:
                log.error("Cannot read configuration file %s: %s (keeping what was read so far)", path, exc)
        if not loaded:
            log.debug("No configuration file found; every key takes its default")
        data: dict[str, dict[str, str]] = {}
        for section in parser.sections():
            data[section] = dict(parser.items(section))
        for section, values in self.overrides.items():
            data.setdefault(section, {}).update(values)
        self._data = data
        self.loaded_files = loaded
        self._mtimes = self._current_mtimes()

    def _current_mtimes(self) -> dict[Path, float]:
        mtimes = {}
        for path in self.files:
            try:
                mtimes[path] = path.stat().st_mtime
            except OSError:
                continue
        return mtimes

    def changed_on_disk(self) -> bool:
        return self._current_mtimes() != self._mtimes

    def section(self, name: str) -> Section:
        defaults = SERVER_DEFAULTS if name == "Server" else {}
        return Section(self._data.get(name, {}), defaults)

    @property
    def server(self) -> Section:
        return self.section("Server")

    def set(self, section: str, key: str, value: str) -> None:
        """Set a value as if it came from the command line (it survives reloads)."""
        self.overrides.setdefault(section, {})[key] = value
        self._data.setdefault(section, {})[key] = value
