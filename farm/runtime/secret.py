"""The install's secret (it signs the monitor's cookies): ``FARM_SECRET_KEY``, or, where that is not set (the
embedded mode on one machine), a random one made on the first start and kept in the data dir, readable by the farm's
user only. There is no built-in default in any mode: a default would be the same on every install, and anyone
could sign cookies with it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from farm.settings import ServerSettings

FILE = "secret_key"


def install_secret(data_dir: Path) -> str:
    """The secret kept in ``data_dir`` (made on first call, mode 0600, never logged)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)  # the database, tokens and this secret: the farm's user only
    path = data_dir / FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 32:
            return value
        raise RuntimeError(f"{path} holds no usable secret: remove it and restart (browser sessions end)") from None
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value + "\n")
    return value


def with_secret(settings: ServerSettings) -> ServerSettings:
    """``settings`` with the secret resolved: the configured one, or the install's."""
    if settings.secret_key:
        return settings
    return settings.model_copy(update={"secret_key": install_secret(settings.data_dir)})
