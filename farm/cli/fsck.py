"""``farm admin fsck``: check that the database and the object store agree (and with ``--repair`` fix it)."""

from __future__ import annotations

from typing import Annotated

import typer

from farm.cli import output as out
from farm.client.admin import AdminClient
from farm.contract import FsckReport

SHOWN = 20  # keys printed per kind; --json has them all


def frame_ranges(frames: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3,7``."""
    runs: list[list[int]] = []
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _show(report: FsckReport) -> None:
    kinds = [
        ("blob rows without objects", report.blob_rows_without_objects),
        ("blob objects without rows", report.blob_objects_without_rows),
        ("frame rows without objects", report.frames_without_objects),
        ("sizes that differ", [f"{m.key} ({m.recorded} recorded, {m.stored} stored)" for m in report.size_mismatches]),
    ]
    out.table(["check", "found"], [[name, len(items)] for name, items in kinds])
    for name, items in kinds:
        for item in items[:SHOWN]:
            out.line(f"{name}: {item}")
        if len(items) > SHOWN:
            out.line(f"{name}: … and {len(items) - SHOWN} more (--json lists them all)")
    if report.jobs_with_lost_frames:
        out.table(
            ["job", "company", "status", "lost frames"],
            [[j.id, j.company, j.status.value, frame_ranges(j.frames)] for j in report.jobs_with_lost_frames],
        )
        out.line("these jobs lost stored frames: render them again (fsck never changes jobs)")
    kept = len(report.orphans_kept)
    if kept:
        out.line(f"{kept} blob object(s) without rows are kept: younger than {report.grace_minutes:g} min, or undated")
    if report.repaired:
        out.line(
            f"repaired: deleted {report.deleted_rows} blob row(s) and {report.deleted_objects} object(s)"
            + (f"; {report.failed_deletes} could not be deleted (see the server log)" if report.failed_deletes else "")
        )
    elif (
        report.blob_rows_without_objects
        or len(report.blob_objects_without_rows) > kept
        or any(m.key.startswith("blobs/") for m in report.size_mismatches)
    ):
        out.line("run again with --repair to fix the blobs")
    elif not any(items for _, items in kinds):
        out.line("the database and the store agree")


def register(admin_app: typer.Typer) -> None:
    """Add ``fsck`` to the ``farm admin`` group."""

    @admin_app.command("fsck")
    def fsck(
        repair: Annotated[
            bool, typer.Option("--repair", help="delete blob rows without objects and old orphan blob objects")
        ] = False,
        grace_minutes: Annotated[
            float,
            typer.Option("--grace-minutes", min=0, help="never delete orphan objects younger than this (uploads)"),
        ] = 60.0,
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    ) -> None:
        """Check that every row has its object and every blob object its row (platform admins)."""
        with AdminClient() as client:
            report = out.admin_report(lambda: client.fsck(repair=repair, grace_minutes=grace_minutes), as_json)
        if report is not None:
            _show(report)
