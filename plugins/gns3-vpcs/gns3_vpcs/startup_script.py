"""The VM's `startup.vpc`: plain vpcs commands run at start, with `%h` standing for the VM name when written."""

from __future__ import annotations

import re

_PCNAME = re.compile(r"^(?P<lead>\s*set\s+pcname\s+)(?P<name>.*?)(?P<tail>\s*)$", re.IGNORECASE)


def script_name(name: str) -> str:
    """The VM name as one script word-run: a line break in a name must not start another vpcs command."""
    return name.replace("\r", " ").replace("\n", " ")


def render(content: str, name: str) -> str:
    """What is written for a startup script received from the client."""
    return content.replace("%h", script_name(name))


def rename(content: str, old: str, new: str) -> str:
    """Keep `set pcname` in step with a rename: every `set pcname <old name>` line now names the new one.

    Only those lines change (the reference replaced the old name anywhere, which breaks `ip 10.0.0.1` for a VM
    renamed from `1`); a pcname the user chose differently is left alone.
    """
    old_word, new_word = script_name(old), script_name(new)
    lines = content.splitlines(keepends=True)
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        match = _PCNAME.match(body)
        if match and match.group("name") == old_word:
            lines[index] = match.group("lead") + new_word + match.group("tail") + line[len(body):]
    return "".join(lines)
