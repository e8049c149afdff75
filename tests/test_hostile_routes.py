"""Every route, walked with hostile values (issue 17): huge and negative integers, NUL characters, very long
strings, traversal, wrong types, in paths, queries and JSON bodies, as a platform admin and on both databases.
Whatever the answer, it is never a 5xx."""

from __future__ import annotations

import itertools
import re

from fastapi.routing import APIRoute

from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres

PATH_VALUES = [
    "9223372036854775808",
    "2147483648",
    "-9223372036854775809",
    "a%00b",
    "%00",
    "x" * 3000,
    "..%2F..",
    "0",
    "-1",
    "job-%E2%80%AE",
]
QUERY_VALUES = ["9223372036854775808", "2147483648", "-1", "a\x00b", "x" * 5000, "", "[]", "1e308"]
BODY_VALUES: list[object] = [
    {},
    [],
    "x",
    None,
    {"name": "a\x00b"},
    {"name": "x" * 10_000, "frames": "1-9223372036854775808"},
    {"name": "n", "blend_file": "s.blend", "frames": "1", "manifest": {"s.blend": {"sha256": "a" * 64, "size": 2**70}}},
    {"name": "n", "chunk_size": 2**64, "priority": -(2**64), "max_attempts": 1e308},
    {"name": "n", "cpu_share": 5e-324, "gpu_hours_budget": 1e307, "max_slots": 2**63, "cpu_hours_budget": False},
    {"sha256": ["a\x00" * 40], "node": "n\x00", "role": "platform-admin\x00", "expires_in_days": 2**63},
]
EXAMPLE = {"job_id": "job-hostile", "token_id": "tok-x", "sha256": "a" * 64, "frame": "1", "name": "n", "node": "n"}


def api_routes(routes: list[object], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every API route with its full path, also inside included routers (however FastAPI nests them)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path_format, route))
        elif hasattr(route, "original_router"):  # an included router
            context = getattr(route, "include_context", None)
            found += api_routes(route.original_router.routes, prefix + getattr(context, "prefix", ""))
    return found


def _paths(template: str) -> list[str]:
    params = re.findall(r"{(\w+)(?::\w+)?}", template)
    if not params:
        return [template]
    out = []
    for param, value in itertools.product(params, PATH_VALUES):
        path = template
        for other in params:
            path = re.sub(r"{" + other + r"(?::\w+)?}", value if other == param else EXAMPLE.get(other, "x"), path)
        out.append(path)
    return out


def test_no_route_answers_5xx_to_hostile_input(db_url, tmp_path):
    with (
        factories.api_farm(tmp_path, database_url=db_url) as farm,
        factories.client(farm, base_url="http://127.0.0.1", raise_server_exceptions=False) as http,
    ):
        with farm.db.session() as s:  # a real job of the caller's company, so routes go past their 404s
            row = factories.job(s, "default", id="job-hostile", frames="1-3", status="active")
            factories.frames(s, row, [1], task_id="job-hostile-t0", key="outputs/x/1.png", size=1, sha256="ab" * 32)
        failures: list[str] = []
        count = 0
        routes = api_routes(farm.app.routes)
        assert len(routes) > 30
        for template, route in routes:
            queries = [p.alias for p in route.dependant.query_params]
            for method in sorted(route.methods):
                for path in _paths(template):
                    requests = [{}]
                    requests += [{"params": {q: v}} for q in queries for v in QUERY_VALUES]
                    if method in ("POST", "PUT", "PATCH"):
                        requests += [{"json": body} for body in BODY_VALUES]
                    for extra in requests:
                        if "/events" in path:
                            extra = {**extra, "headers": {"accept": "text/event-stream"}}
                        count += 1
                        r = http.request(method, path, **extra)
                        if r.status_code >= 500:
                            failures.append(f"{method} {path[:80]} {str(extra)[:99]} -> {r.status_code} {r.text[:200]}")
        assert count > 500
        assert not failures, f"{len(failures)} of {count} hostile requests got a 5xx:\n" + "\n".join(failures[:30])
