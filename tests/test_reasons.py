"""Reason codes (issue 16): one catalogue, both languages, the same parameters, text and code stored together."""

from __future__ import annotations

import pickle
import tomllib

import pytest

from farm.db.engine import Database
from farm.db.models import Job
from farm.domain import reasons
from farm.lifecycle.attempts import WAITING
from farm.lifecycle.blocklist import NO_NODE_LEFT
from farm.lifecycle.dependencies import HELD, WAITING_FOR
from farm.metering import money
from farm.metering.quota import QUOTA_PREFIX
from tests import factories
from web.i18n import CATALOGUE_PATH


def test_every_code_has_english_and_chinese_with_the_same_parameters() -> None:
    with CATALOGUE_PATH.open("rb") as handle:
        messages = tomllib.load(handle)
    for code, entry in reasons.CATALOGUE.items():
        message = messages.get(f"reason.{code}")
        assert message is not None, f"reason {code!r} has no messages.toml entry"
        assert message["en"] == entry.en, f"reason {code!r}: messages.toml's English differs from the catalogue"
        assert message.get("zh"), f"reason {code!r} has no Chinese"
        assert reasons.placeholders(message["zh"]) == reasons.placeholders(entry.en), code
        assert entry.severity in ("info", "warning", "error")
    stale = {key for key in messages if key.startswith("reason.")} - {f"reason.{c}" for c in reasons.CATALOGUE}
    assert not stale, f"messages for codes the catalogue no longer has: {sorted(stale)}"


def test_codes_keep_the_prefixes_the_lifecycle_recognises() -> None:
    for code in ("no_slot", "no_gpu_slot", "no_cpu_slot"):
        assert reasons.make(code).startswith(WAITING)
    assert reasons.make("waiting", reason="x").startswith(WAITING)
    assert reasons.make("no_node_left", nodes="a", job="j").startswith(NO_NODE_LEFT)
    quota = reasons.make("quota", company="c", used="1.00", budget="1", resource="GPU", month="2026-11", flag="gpu")
    assert quota.startswith(QUOTA_PREFIX) and "--gpu-hours-budget" in quota
    assert reasons.make("held_failed", job="j (n)", id="j").startswith(HELD + "job")
    assert reasons.make("waiting_frames", jobs="j (n)").startswith(WAITING_FOR + "frames")


def test_a_reason_is_its_english_text_and_renders_nested_in_another_language() -> None:
    inner = reasons.make("lease_expired", timeout=600)
    outer = reasons.make("chunk_failed", chunk=3, frames="7-8", failures=2, reason=inner)
    assert outer == (
        "chunk 3 (frames 7-8) failed 2 time(s): lease expired: no frame or progress for 600s (FARM_TASK_TIMEOUT_S); "
        "the attempt was killed"
    )
    assert outer.params["reason"] == {"code": "lease_expired", "params": {"timeout": 600}}
    templates = {"chunk_failed": "C{chunk}: {reason}", "lease_expired": "L{timeout}"}
    assert reasons.render(outer.code, outer.params, templates.__getitem__) == "C3: L600"
    copy = pickle.loads(pickle.dumps(outer))  # facts cross processes through Ray
    assert copy == outer and copy.code == "chunk_failed" and copy.params == outer.params
    with pytest.raises(ValueError, match="needs timeout"):
        reasons.make("lease_expired")
    with pytest.raises(KeyError):
        reasons.make("no-such-code")


def test_worker_reasons_code_the_farms_words_and_keep_blenders() -> None:
    coded = reasons.from_worker("frame 12: Error: Cannot read file 'a b.png'\nmore")
    assert isinstance(coded, reasons.Reason) and coded.code == "frame_error"
    assert coded.params == {"frame": 12, "message": "Error: Cannot read file 'a b.png'\nmore"}
    assert coded == "frame 12: Error: Cannot read file 'a b.png'\nmore"
    plain = reasons.from_worker("storage: the store is down")
    assert not isinstance(plain, reasons.Reason) and reasons.coded(plain) == ("", None)


def test_the_code_is_stored_with_the_text_and_never_disagrees(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    db.migrate()  # migration 0015 adds the columns
    with db.session() as s:
        job = factories.job(s, "acme")
        job.status_reason = reasons.make("unblocked", nodes="n1, n2")
        job_id = job.id
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert (job.status_reason, job.status_reason_code) == ("unblocked n1, n2", "unblocked")
        assert job.status_reason_params == {"nodes": "n1, n2"}
        job.status_reason = job.status_reason  # the same text again (settle_job does this) keeps the code
        assert job.status_reason_code == "unblocked"
        job.status_reason = "an operator's note"  # plain text from a writer that has no code: no stale code
        assert (job.status_reason_code, job.status_reason_params) == ("", None)
        job.status_reason = reasons.make("chunk_failed", chunk=0, frames="1", failures=1, reason="x" * 5000)
        assert len(job.status_reason) == 4000 and job.status_reason_code == "chunk_failed"


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (0.0042, "0.0042 EUR"),
        (0.000012345, "0.000012 EUR"),
        (0.042, "0.042 EUR"),
        (0.005, "0.0050 EUR"),
        (0.0, "0.00 EUR"),
        (12.5, "12.50 EUR"),
        (0.02 * 2 * 9 / 3600, "0.00010 EUR"),  # 0.0000999… in floating point
        (1234.5678, "1234.57 EUR"),
    ],
)
def test_small_costs_never_read_zero(cost: float, text: str) -> None:
    assert money.format_cost(cost, "EUR") == text


def test_costs_use_the_viewers_number_format() -> None:
    def number(value: float, digits: int) -> str:
        return f"{value:.{digits}f}".replace(".", ",")

    assert money.format_cost(0.0042, "USD", number) == "0,0042 USD"


def test_a_reason_from_a_newer_worker_arrives_as_its_english_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mid-upgrade a worker may know a code the scheduler does not: its facts must still arrive (they once made
    # the scheduler count the attempt as lost, again and again), with the reason's English text.
    monkeypatch.setitem(reasons.CATALOGUE, "from_the_future", reasons.Entry("error", "new words: {detail}"))
    sent = pickle.dumps(reasons.make("from_the_future", detail="x"))
    monkeypatch.delitem(reasons.CATALOGUE, "from_the_future")
    got = pickle.loads(sent)
    assert got == "new words: x" and not isinstance(got, reasons.Reason)


def test_a_huge_foreign_message_is_stored_bounded() -> None:
    reason = reasons.make("frame_error", frame=3, message="x" * 100_000)
    assert len(reason.params["message"]) == reasons.MAX_PARAM_CHARS
    assert reason.startswith("frame 3: xxx") and len(reason) < 4100
