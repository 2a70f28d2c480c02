"""The plugin's pure parts: terminal output filtering, settings of both API families, the engine clock."""

from __future__ import annotations

import pytest
from gns3_docker.engine import EngineError, unix_time
from gns3_docker.settings import (
    check_resolution,
    environment_lines,
    hostname_of,
    normalise_command,
    normalise_image,
    release_names,
    split_command,
)
from gns3_docker.telnet import IAC, TelnetInput, TerminalOutput

from gns3core.errors import BadRequest


def test_cursor_position_query_is_removed_even_when_split_across_reads() -> None:
    terminal = TerminalOutput()
    out = terminal.feed(b"/ # \x1b[6")
    assert out == b"/ # " and terminal.holding
    out += terminal.feed(b"nls\r\n\x1b[6n")
    assert out == b"/ # ls\r\n" and not terminal.holding
    assert terminal.feed(b"\x1b[1;32mgreen\x1b[0m") == b"\x1b[1;32mgreen\x1b[0m"  # other sequences pass


def test_a_held_escape_that_is_no_query_is_let_through() -> None:
    terminal = TerminalOutput()
    assert terminal.feed(b"a\x1b") == b"a"
    assert terminal.flush() == b"\x1b"
    assert terminal.feed(b"\x1b[") == b""
    assert terminal.feed(b"A") == b"\x1b[A"


def test_iac_is_doubled_for_the_client_and_telnet_commands_removed_from_input() -> None:
    assert TerminalOutput().feed(bytes([IAC, 65])) == bytes([IAC, IAC, 65])
    telnet = TelnetInput()
    assert telnet.feed(bytes([IAC, 251, 1]) + b"ls\r\0") == b"ls\r"
    assert telnet.feed(b"pwd\r\n") == b"pwd\r"


def test_seed_names_become_release_names_and_the_release_name_wins() -> None:
    assert release_names({"imagename": "a", "startcmd": "b", "name": "n"}) == {"image": "a", "start_command": "b",
                                                                              "name": "n"}
    assert release_names({"imagename": "old", "image": "new"}) == {"image": "new"}


@pytest.mark.parametrize(("given", "expected"), [
    ("busybox", "busybox:latest"), ("busybox:1.36", "busybox:1.36"),
    ("registry:5000/team/app", "registry:5000/team/app:latest"),
    ("registry:5000/app:2", "registry:5000/app:2"), ("app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
])
def test_image_normalisation(given: str, expected: str) -> None:
    assert normalise_image(given) == expected


def test_commands_environment_resolution_hostname() -> None:
    assert normalise_command("  ") is None and normalise_command(" sh ") == "sh"
    assert split_command("sh -c 'echo a b; exit 3'") == ["sh", "-c", "echo a b; exit 3"]
    with pytest.raises(BadRequest, match="cannot be split"):
        split_command("sh -c 'unclosed")
    assert environment_lines(" A=1 \n\n  B=two words \n") == ["A=1", "B=two words"]
    assert environment_lines(None) == []
    assert check_resolution("1920x1080") == "1920x1080"
    for bad in ("0x10", "99999x10", "1024*768"):
        with pytest.raises(BadRequest):
            check_resolution(bad)
    assert hostname_of("PC 1 (lab)") == "PC-1-lab" and hostname_of("!!!") == "gns3"


def test_engine_clock_in_the_form_events_since_takes() -> None:
    assert unix_time("2026-12-01T20:25:11.123456789Z") == "1796156711.123456789"
    assert unix_time("2026-12-01T21:25:11.5+01:00") == "1796156711.500000000"
    with pytest.raises(EngineError):
        unix_time("yesterday")
