"""startup.vpc text rules: `%h` and renames."""

from __future__ import annotations

from gns3_vpcs import startup_script


def test_render_replaces_every_placeholder() -> None:
    assert startup_script.render("set pcname %h\necho %h\n", "PC-A") == "set pcname PC-A\necho PC-A\n"


def test_a_name_cannot_add_a_command() -> None:
    assert startup_script.render("set pcname %h\n", "A\nip 1.2.3.4") == "set pcname A ip 1.2.3.4\n"


def test_rename_touches_only_matching_pcname_lines() -> None:
    script = "set pcname 1\r\nip 10.0.0.1 24\r\nSET  PCNAME 1\n# set pcname other\nset pcname mine\n"
    assert startup_script.rename(script, "1", "PC-B") == (
        "set pcname PC-B\r\nip 10.0.0.1 24\r\nSET  PCNAME PC-B\n# set pcname other\nset pcname mine\n"
    )
