"""The CLI's output layer: the one place that prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

M = TypeVar("M", bound=BaseModel)

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


def admin_report(call: Callable[[], M], as_json: bool) -> M | None:
    """Run an admin call: on a client error print it and exit (2: the farm is unreachable, 1: refused); with
    ``as_json`` print the report as one JSON object and return None, else return it for a human summary."""
    import typer

    from farm.client import ClientError

    try:
        report = call()
    except ClientError as exc:
        error(exc.detail)
        raise typer.Exit(2 if exc.status == 0 else 1) from exc
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return None
    return report
