"""``farm library publish|list|show|pull|retract|usage`` and ``farm admin report`` (issue 20)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from farm.cli import output as out
from farm.client import ClientError
from farm.client.library import LibraryClient
from farm.contract import LibraryAssetOut

library_app = typer.Typer(
    help="The common asset library: assets studios publish for each other, stored once.", no_args_is_help=True
)
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
T = TypeVar("T")


def _call(action: Callable[[LibraryClient], T]) -> T:
    """Run one call; a refusal prints the farm's reason (exit 1), an unreachable farm exits 2."""
    with LibraryClient() as client:
        try:
            return action(client)
        except ClientError as exc:
            out.error(exc.detail)
            raise typer.Exit(2 if exc.status == 0 else 1) from exc


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _show(asset: LibraryAssetOut) -> None:
    out.line(f"{asset.id}  {asset.name}  ({asset.filename}, {_size(asset.size)})")
    out.line(f"  publisher: {asset.publisher}")
    shared = "every company" if asset.visibility == "all" else ", ".join(asset.to or []) or "listed companies"
    out.line(f"  shared with: {shared}")
    out.line(f"  tags: {', '.join(asset.tags) or '-'}")
    out.line(f"  sha256: {asset.sha256}")
    if asset.retracted_at is not None:
        out.line(f"  retracted: {asset.retracted_at.isoformat()}")
    out.line(f"  licence: {asset.licence}")


@library_app.command("publish")
def publish(
    path: Annotated[Path, typer.Argument(help="the file: a texture, HDRI, .blend library, font…")],
    name: Annotated[str, typer.Option("--name", help="what studios browse by")],
    licence: Annotated[str, typer.Option("--licence", help="the terms others may use it under")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="only this company (repeat); default: every company")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeat)")] = None,
    as_json: AsJson = False,
) -> None:
    """Publish a file your company owns (company admins): uploaded unless the farm holds it, then shared."""
    if not path.is_file():
        out.error(f"{path}: no such file")
        raise typer.Exit(2)
    try:
        asset = _call(lambda c: c.publish(path, name, licence, tag or [], to or []))
    except ValidationError as exc:
        for err in exc.errors():
            out.error(f"--{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        raise typer.Exit(2) from exc
    if as_json:
        out.emit_json(asset.model_dump(mode="json"))
        return
    _show(asset)


@library_app.command("list")
def list_assets(
    tag: Annotated[str | None, typer.Option("--tag", help="only assets with this tag")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="only your company's")] = False,
    retracted: Annotated[bool, typer.Option("--retracted", help="with --mine: retracted ones too")] = False,
    as_json: AsJson = False,
) -> None:
    """Assets your company may use, newest first."""
    assets = _call(lambda c: c.library(tag, mine, retracted))
    if as_json:
        out.emit_json({"assets": [a.model_dump(mode="json") for a in assets]})
        return
    out.table(
        ["id", "name", "file", "size", "publisher", "tags", "state"],
        [
            [
                a.id,
                a.name,
                a.filename,
                _size(a.size),
                a.publisher,
                ",".join(a.tags),
                "retracted" if a.retracted_at else "live",
            ]
            for a in assets
        ],
    )


@library_app.command("show")
def show(asset_id: Annotated[str, typer.Argument(help="the asset's id")], as_json: AsJson = False) -> None:
    """One asset: publisher, who it is shared with, tags, licence."""
    asset = _call(lambda c: c.library_asset(asset_id))
    if as_json:
        out.emit_json(asset.model_dump(mode="json"))
        return
    _show(asset)


@library_app.command("pull")
def pull(
    asset_id: Annotated[str, typer.Argument(help="the asset's id")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder to save it in")] = Path("."),
) -> None:
    """Download an asset (checked against its sha256) to use in a scene; jobs then reference it, not upload it."""
    dest = _call(lambda c: c.pull(asset_id, out_dir))
    out.line(f"saved {dest}")


@library_app.command("retract")
def retract(asset_id: Annotated[str, typer.Argument(help="the asset's id")]) -> None:
    """Stop new use of an asset your company published; jobs already queued keep it."""
    asset = _call(lambda c: c.retract(asset_id))
    out.line(f"retracted {asset.id} ({asset.name}); jobs already submitted still render with it")


@library_app.command("usage")
def usage(asset_id: Annotated[str, typer.Argument(help="the asset's id")], as_json: AsJson = False) -> None:
    """Per month, how many jobs and companies used an asset your company published."""
    report = _call(lambda c: c.library_usage(asset_id))
    if as_json:
        out.emit_json(report.model_dump(mode="json"))
        return
    out.table(
        ["month", "jobs", "companies", "bytes avoided"],
        [[m.month, m.jobs, m.companies, m.bytes_avoided] for m in report.months],
    )


def operator_report(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM (UTC)")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """The operator's report (platform admins): per pool capacity, use, utilisation, queue waits, company shares,
    cost recovered, failed and lost attempts, and library reuse; formulas in the README ("Shared platform")."""
    from farm.metering import operator_report as report_module

    fmt = fmt.lower()
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        out.error(f"--month must be a month as YYYY-MM, e.g. 2026-11, not {month!r}")
        raise typer.Exit(2)
    if fmt not in ("table", "csv", "json"):
        out.error(f"--format must be table, csv or json, not {fmt!r}")
        raise typer.Exit(2)
    report = _call(lambda c: c.operator_report(month))
    if fmt == "json":
        out.emit_json(report.model_dump(mode="json"))
    elif fmt == "csv":
        out.plain(report_module.to_csv(report))
    else:
        for columns, rows in report_module.table_rows(report):
            out.table(columns, rows)


def register(app: typer.Typer) -> None:
    """Add ``library`` to ``farm`` and ``report`` to ``farm admin``."""
    from farm.cli.admin import admin_app

    app.add_typer(library_app, name="library")
    admin_app.command("report")(operator_report)
