"""Bounds of numbers taken from paths and queries, so nothing past what the database stores reaches it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

#: Blender's frame numbers lie within +-1,048,574 (MAXFRAME).
MAX_FRAME = 1_048_574

FrameNumber = Annotated[int, Path(ge=-MAX_FRAME, le=MAX_FRAME, description="a frame number of the job")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="rows to skip")]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="page of the list, from 1")]
