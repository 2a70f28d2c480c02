"""`--record` / `[Server] record`: every API request is appended as a curl command line."""

from __future__ import annotations

import json
import shlex

import pytest


@pytest.fixture
def gns3_config_overrides(tmp_path):
    return {"Server": {"record": str(tmp_path / "session.curl")}}


async def test_requests_are_recorded_as_curl_lines(api, tmp_path) -> None:
    created = await api.post("/v1/projects", {"name": "recorded"})
    assert created.status == 201
    await api.get("/v1/version")
    lines = (tmp_path / "session.curl").read_text().splitlines()
    assert len(lines) == 2
    first = shlex.split(lines[0])
    assert first[:4] == ["curl", "-i", "-X", "POST"]
    assert first[4].endswith("/v1/projects")
    assert json.loads(first[first.index("-d") + 1]) == {"name": "recorded"}
    second = shlex.split(lines[1])
    assert second[3] == "GET" and second[4].endswith("/v1/version") and "-d" not in second
