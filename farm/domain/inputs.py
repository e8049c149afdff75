"""Where a job's input lives in the store: its own company's blobs, or a library asset's publisher's (issue 20).

A manifest entry is ``{sha256, size}``; the server adds ``from`` (the publisher's company id) when the file is a
library asset the job's company may use, so the bytes are stored once and read from the publisher's namespace.
Clients cannot set ``from``: the submitted manifest refuses unknown fields. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

FROM_FIELD = "from"


def input_owner(company_id: str, entry: Mapping[str, object]) -> str:
    """The company whose ``blobs/<company>/`` namespace holds this manifest entry's bytes."""
    owner = entry.get(FROM_FIELD)
    return str(owner) if owner else company_id
