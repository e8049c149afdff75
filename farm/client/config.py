"""Where the CLI finds the farm: ``FARM_URL`` / ``FARM_TOKEN``, else the user's config file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8321"


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/render-farm/config.json`` (``~/.config/...``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "render-farm" / "config.json"


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str | None


def read_file() -> dict[str, str]:
    """The config file's content, or empty when absent or unreadable."""
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_file(url: str, token: str) -> Path:
    """Save url and token for later CLI calls (mode 0600: the token is a secret)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
    os.replace(tmp, path)
    return path


def load(url: str | None = None, token: str | None = None) -> ClientConfig:
    """Explicit values first, then the environment, then the config file."""
    stored = read_file()
    return ClientConfig(
        url=(url or os.environ.get("FARM_URL") or stored.get("url") or DEFAULT_URL).rstrip("/"),
        token=token or os.environ.get("FARM_TOKEN") or stored.get("token") or None,
    )
