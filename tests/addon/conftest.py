"""Fixtures of the add-on tests: the extension zip, built once per session like an artist gets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip exactly as an artist gets it: built by the CLI entry point."""
    out_dir = tmp_path_factory.mktemp("addon-dist")
    farm_cli = Path(sys.executable).with_name("farm")
    result = subprocess.run(
        [str(farm_cli), "addon", "build", "--out", str(out_dir)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    (zip_path,) = out_dir.glob("render_farm-*.zip")
    return zip_path
