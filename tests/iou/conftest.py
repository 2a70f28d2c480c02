"""Fixtures of the IOU tests: the plugin in-process, the IOU stand-in image (built here from source), a licence.

The stand-in is not IOU: see iou_standin.py. Building it needs binutils; a missing toolchain skips these tests on a
developer's machine and fails them in CI.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gns3_iou.plugin
import pytest
import pytest_asyncio
from gns3_iou import licence

sys.path.insert(0, str(Path(__file__).parent))

from iou_helpers import CONSOLE_RANGE, UDP_RANGE  # noqa: E402
from standin_image import build_standin_image, toolchain_missing  # noqa: E402

from gns3core.testing import require  # noqa: E402
from gns3core.testing.notifications import NotificationStream  # noqa: E402


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_iou.plugin]


@pytest.fixture
def gns3_use_entry_points() -> bool:
    return False


@pytest.fixture(scope="session")
def valid_iourc(tmp_path_factory) -> Path:
    """An iourc with this host's correct key."""
    path = tmp_path_factory.mktemp("iourc") / "iourc"
    path.write_text(licence.iourc_text(licence.host_name(), licence.licence_key(licence.host_name(),
                                                                                licence.host_id())))
    return path


@pytest.fixture
def iou_config() -> dict[str, str]:
    """The [IOU] section of the test server (tests change it before the server is built)."""
    return {}


@pytest.fixture
def gns3_config_overrides(valid_iourc: Path, iou_config: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        "Server": {"console_start_port_range": CONSOLE_RANGE[0], "console_end_port_range": CONSOLE_RANGE[1],
                   "udp_start_port_range": UDP_RANGE[0], "udp_end_port_range": UDP_RANGE[1]},
        "IOU": {"iourc_path": str(valid_iourc), **iou_config},
    }


@pytest.fixture(scope="session")
def standin_image_file(tmp_path_factory) -> Path:
    """The IOU stand-in image, assembled once per test session."""
    reason = toolchain_missing()
    require(reason is None, f"cannot build the IOU stand-in image: {reason}")
    return build_standin_image(tmp_path_factory.mktemp("standin") / "iou-standin.bin")


@pytest.fixture
def standin_image(gns3_config, standin_image_file: Path) -> str:
    """The stand-in copied into the test server's images/IOU (as an upload would put it); its `path` value."""
    folder = Path(gns3_config.server.get("images_path")) / "IOU"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "iou-standin.bin"
    target.write_bytes(standin_image_file.read_bytes())
    target.chmod(0o755)
    return target.name


@pytest_asyncio.fixture
async def notifications(api, project) -> AsyncIterator[NotificationStream]:
    async with NotificationStream(api, project["project_id"]) as stream:
        yield stream


@pytest.fixture
def vpcs_path() -> str:
    path = shutil.which("vpcs")
    require(path is not None, "vpcs is not installed (apt-get install vpcs)")
    return str(path)


@pytest.fixture
def capture_tools() -> None:
    for tool in ("capinfos", "tshark"):
        require(shutil.which(tool) is not None, f"{tool} is not installed (apt-get install tshark)")


@pytest.fixture(scope="session", autouse=True)
def _netio_directory_left_as_found():
    """/tmp/netio<uid> is shared by every IOU of this user: removed after the session only if the tests made it
    and nothing is left in it."""
    from gns3core.dataplane import netio_directory

    directory = netio_directory()
    existed = directory.exists()
    yield
    if not existed:
        try:
            directory.rmdir()
        except OSError:
            pass
