"""The checked-in contract matches the code, so a change to the API shows in review."""

from pathlib import Path

from web.openapi import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def test_checked_in_openapi_is_current():
    assert DOC.read_text() == render(), "the API changed: run `make openapi` and commit docs/openapi.json"

