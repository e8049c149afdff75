"""Shared fixtures: one embedded farm (real Ray, real Blender) per test session, rendered jobs reused."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.backends import db_url, postgres  # noqa: F401  (every module may run on both databases)

# Tests never touch the user's CLI config or hash cache.
_HOME = Path(tempfile.mkdtemp(prefix="farm-test-home-"))
os.environ["XDG_CONFIG_HOME"] = str(_HOME / "config")
os.environ["XDG_CACHE_HOME"] = str(_HOME / "cache")
os.environ["XDG_DATA_HOME"] = str(_HOME / "data")
for _var in ("FARM_URL", "FARM_TOKEN"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def sample_blend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample scene at 32x32, 1 sample (tiny and fast)."""
    from farm.sample import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample"), resolution=(32, 32), samples=1)


@pytest.fixture(scope="session")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One embedded farm for the whole session: Ray on loopback, one Blender slot, API on a free port."""
    from farm.runtime.embedded import EmbeddedFarm
    from farm.settings import ServerSettings

    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("farm-data"), port=0, write_cli_config=False)
    embedded = EmbeddedFarm(settings).start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture()
def client(farm: object) -> Iterator[object]:
    from farm.client import FarmClient
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    with FarmClient(farm.url, farm.admin_token) as c:
        yield c
