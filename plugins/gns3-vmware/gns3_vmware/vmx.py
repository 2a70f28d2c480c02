"""VMware's `key = "value"` files (.vmx, .vmsd, inventory.vmls, preferences), read and written line by line.

VMware treats keys case-insensitively, so lookups use lower-cased keys; every line keeps its original bytes until
the server changes that very key, so a file the server did not change is written back byte for byte. The first line
may be a `#!` shebang; `.encoding = "..."` on the first other line names the file's encoding (UTF-8 otherwise).
Bytes the encoding cannot decode are kept as they are (surrogate escapes).
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gns3core.files import atomic_write

PAIR = re.compile(r'^\s*([^\s=#"]+)\s*=\s*(?:"([^"]*)"|(\S[^\r\n]*?))?\s*$')
ENCODING = re.compile(rb'^\s*\.encoding\s*=\s*"([^"\r\n]*)"', re.IGNORECASE)
FORBIDDEN_IN_VALUES = ('"', "\r", "\n", "\x00")


class VMXError(ValueError):
    """A value the format cannot hold, or a file that cannot be read."""


@dataclass
class Line:
    """One line as read (with its end of line); `key` is lower-cased, None for comments and blank lines."""

    text: str
    key: str | None = None
    value: str | None = None


def _encoding_of(data: bytes) -> str:
    lines = data.splitlines()
    if lines and lines[0].startswith(b"#!"):
        lines = lines[1:]
    if lines:
        match = ENCODING.match(lines[0])
        if match:
            name = match.group(1).decode("ascii", errors="replace")
            try:
                return codecs.lookup(name).name
            except LookupError:
                pass
    return "utf-8"


def _split_lines(text: str) -> list[str]:
    """Lines with their own end of line (LF or CR LF), the last one possibly without; only LF ends a line, as for
    VMware (str.splitlines would also split at form feeds and other characters a value may hold)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def parse_line(text: str) -> Line:
    match = PAIR.match(text.rstrip("\r\n"))
    if match is None or text.lstrip().startswith("#"):
        return Line(text)
    value = match.group(2) if match.group(2) is not None else (match.group(3) or "")
    return Line(text, match.group(1).lower(), value)


class VMXFile:
    """The lines of one VMware settings file; `get`/`set`/`delete` address keys case-insensitively."""

    def __init__(self, lines: list[Line], encoding: str = "utf-8") -> None:
        self.lines = lines
        self.encoding = encoding

    # -- reading and writing -----------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> VMXFile:
        encoding = _encoding_of(data)
        text = data.decode(encoding, errors="surrogateescape")
        return cls([parse_line(line) for line in _split_lines(text)], encoding)

    @classmethod
    def read(cls, path: Path | str, limit: int = 16 * 1024 * 1024) -> VMXFile:
        """Read a file (blocking: call it from a worker thread); VMXError when it is missing or unreasonably big."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise VMXError(f'Could not read "{path}": {exc.strerror or exc}') from None
        if len(data) > limit:
            raise VMXError(f'"{path}" is larger than {limit // (1024 * 1024)} MiB: not a VMware settings file')
        return cls.parse(data)

    def to_bytes(self) -> bytes:
        return "".join(line.text for line in self.lines).encode(self.encoding, errors="surrogateescape")

    def write(self, path: Path | str) -> None:
        """Replace the file atomically (blocking), keeping its permission bits."""
        try:
            mode: int | None = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = None
        atomic_write(path, self.to_bytes(), mode=mode)

    # -- keys ----------------------------------------------------------------------------------------------------

    def _indexes(self, key: str) -> list[int]:
        key = key.lower()
        return [i for i, line in enumerate(self.lines) if line.key == key]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the last line with this key (VMware's reading), or `default`."""
        indexes = self._indexes(key)
        return self.lines[indexes[-1]].value if indexes else default

    def __contains__(self, key: str) -> bool:
        return bool(self._indexes(key))

    def is_true(self, key: str) -> bool:
        return (self.get(key) or "").strip().upper() == "TRUE"

    def keys(self) -> list[str]:
        return list(dict.fromkeys(line.key for line in self.lines if line.key is not None))

    def items(self) -> dict[str, str]:
        """Every key (lower-cased) with its value; a repeated key keeps its last value."""
        return {line.key: line.value or "" for line in self.lines if line.key is not None}

    def line_of(self, key: str) -> str | None:
        """The full text of the key's line (for putting it back exactly), or None when absent."""
        indexes = self._indexes(key)
        return self.lines[indexes[-1]].text if indexes else None

    def set(self, key: str, value: str) -> None:
        """Give `key` a value: the existing line keeps its place and its key's spelling; a new key is appended."""
        if any(ch in value for ch in FORBIDDEN_IN_VALUES):
            raise VMXError(f"The value {value!r} of {key} cannot be written to a VMware settings file")
        indexes = self._indexes(key)
        if indexes:
            line = self.lines[indexes[-1]]
            if line.value == value:
                return
            original_key = re.match(r"\s*([^\s=]+)", line.text).group(1)  # type: ignore[union-attr]
            ending = line.text[len(line.text.rstrip("\r\n")):]
            self.lines[indexes[-1]] = Line(f'{original_key} = "{value}"{ending or self._newline()}', key.lower(),
                                           value)
            for i in reversed(indexes[:-1]):  # earlier duplicates would only confuse a reader
                del self.lines[i]
            return
        self._ensure_final_newline()
        self.lines.append(Line(f'{key.lower()} = "{value}"{self._newline()}', key.lower(), value))

    def put_line(self, key: str, text: str | None) -> None:
        """Put back a key's line exactly as it was (`text`), or remove the key when it was absent (None)."""
        indexes = self._indexes(key)
        if text is None:
            for i in reversed(indexes):
                del self.lines[i]
            return
        restored = parse_line(text)
        if indexes:
            self.lines[indexes[-1]] = restored
            for i in reversed(indexes[:-1]):
                del self.lines[i]
        else:
            self._ensure_final_newline()
            self.lines.append(restored)

    def delete(self, key: str) -> None:
        for i in reversed(self._indexes(key)):
            del self.lines[i]

    def delete_prefix(self, prefix: str) -> list[str]:
        """Remove every key starting with `prefix` (e.g. `ethernet3.`); the removed keys."""
        prefix = prefix.lower()
        removed = [line.key for line in self.lines if line.key is not None and line.key.startswith(prefix)]
        self.lines = [line for line in self.lines if line.key is None or not line.key.startswith(prefix)]
        return [key for key in removed if key is not None]

    def _newline(self) -> str:
        for line in self.lines:
            if line.text.endswith("\r\n"):
                return "\r\n"
            if line.text.endswith("\n"):
                return "\n"
        return "\n"

    def _ensure_final_newline(self) -> None:
        if self.lines and not self.lines[-1].text.endswith("\n"):
            last = self.lines[-1]
            self.lines[-1] = Line(last.text + self._newline(), last.key, last.value)


def read_pairs(path: Path | str) -> dict[str, str]:
    """Every key of a settings file (lower-cased) with its value; {} for a missing or unreadable file."""
    try:
        return VMXFile.read(path).items()
    except VMXError:
        return {}
