"""``farm admin gc``: delete input blobs that no job within the retention references, and expire finished jobs
older than their company's ``retention_days`` with their outputs (dry run by default)."""

from __future__ import annotations

from typing import Annotated

import typer

from farm.cli import output as out
from farm.client import FarmClient


def register(admin_app: typer.Typer) -> None:
    """Add ``gc`` to the ``farm admin`` group."""

    @admin_app.command("gc")
    def gc(
        apply: Annotated[bool, typer.Option("--apply", help="delete (default: only print what would go)")] = False,
        retention_days: Annotated[
            float, typer.Option("--retention-days", min=0.001, help="keep blobs of jobs newer than this")
        ] = 30.0,
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    ) -> None:
        """Delete unreferenced blobs and expire finished jobs past their company's retention (platform admins).

        A company's retention is set with ``farm admin company update NAME --retention-days N``; companies without
        one keep every job. Running, queued and paused jobs are never expired."""
        with FarmClient() as client:
            report = out.admin_report(lambda: client.gc(apply=apply, retention_days=retention_days), as_json)
        if report is None:
            return
        verb = "deleted" if report.applied else "would delete"
        for name in report.blobs:
            out.line(f"{verb} blob {name}")
        for name in report.expired_jobs:
            out.line(f"{verb} expired job {name}")
        out.line(
            f"{verb} {len(report.blobs)} blob(s), {report.blob_bytes} bytes, and {report.stale_uploads} "
            f"uncommitted upload(s) (retention {report.retention_days:g} days); "
            f"{len(report.expired_jobs)} expired job(s) with {report.output_objects} output file(s), "
            f"{report.output_bytes} bytes (each company's retention_days)"
            + ("" if report.applied else "; run again with --apply to delete them")
        )
