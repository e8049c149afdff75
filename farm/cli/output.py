"""The CLI's output layer: the one place that prints."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    """One JSON object on stdout (for ``--json``)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def plain(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def error(text: str) -> None:
    err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


def table(columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(*columns)
    for row in rows:
        t.add_row(*(str(c) for c in row))
    console.print(t)
