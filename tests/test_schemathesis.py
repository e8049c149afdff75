"""Zero 5xx and a truthful contract under fuzzing (issue 17): schemathesis generates requests for every operation
of the OpenAPI document, positive and negative, sends them to a live server on 127.0.0.1 with a platform-admin
token, and fails on any 5xx and on any answer whose status, content type or body the document does not describe.

Bounded: a few examples per operation (``FARM_FUZZ_EXAMPLES`` raises it for a longer run by hand), no shrinking,
no example database, so the suite stays fast and the run is the same on every machine."""

from __future__ import annotations

import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import factories

EXAMPLES = int(os.environ.get("FARM_FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    with factories.api_farm(tmp_path_factory.mktemp("fuzz")) as farm:
        with farm.db.session() as s:  # something to find: a job with a stored frame
            row = factories.job(s, "default", id="job-fuzz", frames="1-3", status="active")
            factories.frames(s, row, [1], task_id="job-fuzz-t0", key="outputs/x/1.png", size=1, sha256="ab" * 32)
        with factories.serve(farm.app) as url:  # a live server over HTTP on 127.0.0.1
            schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
            schema.config.update(base_url=url)
            yield farm, schema


def test_no_operation_answers_5xx_or_off_contract(fuzzed):
    farm, schema = fuzzed
    headers = {"Authorization": f"Bearer {farm.admin_token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        if operation.path.endswith("/events") or operation.path == "/metrics":
            continue  # streams and the Prometheus text are covered by their own tests

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # checks fail as exception groups: collect each operation's, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {_describe(exc)[:800]}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
