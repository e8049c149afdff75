"""The chart's wiring, by value: every farm container's environment, with Secret references resolved from the
rendered Secret, is loaded into the farm's own ``ServerSettings``, and what the process would then use (backend,
endpoint, bucket, database, Ray address, caches) must be what the release's other objects serve.

Checking that keys exist is not enough: the chart once set every ``FARM_S3_*`` key but never ``FARM_STORAGE=s3``,
so each pod kept blobs in its own container folder. ``tests/deploy`` then runs the rendered processes for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from farm.settings import Mode, ServerSettings, StorageBackend
from tests.deploy.plan import resolve_env, secret_data

from .conftest import FULLNAME, Doc, env_of, find, one, render
from .test_chart import external_values

MINIO = f"{FULLNAME}-minio"
POSTGRESQL = f"{FULLNAME}-postgresql"
HEAD_SVC = f"{FULLNAME}-ray-head-svc"


def farm_containers(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(label, container) of every container that runs the farm's code with farm settings."""
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in {"Deployment", "Job"}:
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c.get("command", [""])[0] == "farm":
                    yield f"{kind}/{name}/{c['name']}", c
        elif kind == "RayCluster":
            for group in doc["spec"].get("workerGroupSpecs", []):
                yield f"RayCluster/{group['groupName']}", group["template"]["spec"]["containers"][0]


def settings_of(container: Doc, docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    """What ``ServerSettings()`` reads in that container."""
    import os

    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env = resolve_env(container, secret_data(docs))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "FARM_SECRET_KEY" not in env:
        # Render workers sign nothing and never build ServerSettings from their env (their actors get the store
        # settings from the scheduler); only the cluster mode's refusal of the default key needs one here.
        return ServerSettings(secret_key="render-worker-signs-nothing")
    return ServerSettings()


def service_ports(docs: list[Doc], name: str) -> set[int]:
    return {p["port"] for p in one(docs, "Service", name)["spec"]["ports"]}


def test_every_farm_process_uses_the_release_bucket(ci_docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    bucket_job = one(ci_docs, "Job", f"{MINIO}-bucket")["spec"]["template"]["spec"]["containers"][0]
    labels = []
    for label, container in farm_containers(ci_docs):
        settings = settings_of(container, ci_docs, monkeypatch)
        labels.append(label)
        assert settings.mode is Mode.CLUSTER, label
        assert settings.storage is StorageBackend.S3, label  # not a folder inside the container
        host, port = settings.s3_endpoint.split(":")
        assert host == MINIO and int(port) in service_ports(ci_docs, MINIO), label
        assert settings.s3_bucket == env_of(bucket_job)["S3_BUCKET"] == "render-farm", label
        assert settings.s3_secure is False, label
        secret = secret_data(ci_docs)[f"{FULLNAME}-credentials"]
        if label.startswith("RayCluster/"):  # issue 15: render nodes hold no store key, assignments carry grants
            assert (settings.s3_access_key, settings.s3_secret_key) == ("", ""), label
        else:
            keys = (settings.s3_access_key, settings.s3_secret_key)
            assert keys == (secret["s3-access-key"], secret["s3-secret-key"]), label
        assert settings.ray_address == f"{HEAD_SVC}:6379", label
    assert len(labels) == 5, labels  # API, scheduler, migration Job, CPU and GPU workers


def test_minio_serves_with_the_keys_the_farm_uses(ci_docs: list[Doc]) -> None:
    (minio,) = find(ci_docs, "StatefulSet", MINIO)
    env = env_of(minio["spec"]["template"]["spec"]["containers"][0])
    assert env["MINIO_ROOT_USER"]["secretKeyRef"]["key"] == "s3-access-key"
    assert env["MINIO_ROOT_PASSWORD"]["secretKeyRef"]["key"] == "s3-secret-key"


def test_control_plane_reaches_the_release_database(ci_docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    (db,) = find(ci_docs, "StatefulSet", POSTGRESQL)
    db_env = resolve_env(db["spec"]["template"]["spec"]["containers"][0], secret_data(ci_docs))
    for label, container in farm_containers(ci_docs):
        if label.startswith("RayCluster/"):
            continue
        settings = settings_of(container, ci_docs, monkeypatch)
        url = urlsplit(settings.db_url)
        assert url.scheme == "postgresql+psycopg", label
        assert url.hostname == POSTGRESQL and url.port in service_ports(ci_docs, POSTGRESQL), label
        assert (url.username, url.password) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"]), label
        assert url.path == f"/{db_env['POSTGRES_DB']}", label
        assert settings.secret_key and len(settings.secret_key) >= 32, label


def test_render_workers_get_no_database_credentials(ci_docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    for label, container in farm_containers(ci_docs):
        if label.startswith("RayCluster/"):
            assert settings_of(container, ci_docs, monkeypatch).database_url is None, label


def test_scheduler_points_workers_at_their_cache_volume(ci_docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = one(ci_docs, "Deployment", f"{FULLNAME}-scheduler")["spec"]["template"]["spec"]["containers"][0]
    settings = settings_of(scheduler, ci_docs, monkeypatch)
    # The scheduler decides each worker actor's cache folder: it must be the worker pods' asset-cache volume.
    for label, container in farm_containers(ci_docs):
        if label.startswith("RayCluster/"):
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert str(settings.cache_dir) == mounts["asset-cache"], label


def test_only_the_hook_job_migrates(ci_docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    job = one(ci_docs, "Job", f"{FULLNAME}-migrate")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"post-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] + container["args"][:1] == ["farm", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    for name in ("api", "scheduler"):
        pod = one(ci_docs, "Deployment", f"{FULLNAME}-{name}")["spec"]["template"]["spec"]
        assert settings_of(pod["containers"][0], ci_docs, monkeypatch).migrate_on_start is False, name


def test_external_services_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(external_values())
    seen: list[Any] = []
    for label, container in farm_containers(docs):
        settings = settings_of(container, docs, monkeypatch)
        assert settings.storage is StorageBackend.S3 and settings.s3_endpoint == "s3.studio.example:9000", label
        assert settings.s3_secure is True, label
        # Issue 15: the control plane holds the store's key, render nodes none.
        assert settings.s3_access_key == ("" if label.startswith("RayCluster/") else "AKIAEXAMPLE"), label
        if not label.startswith("RayCluster/"):
            assert settings.db_url == "postgresql+psycopg://farm:pw@db.studio.example:5432/farm", label
        seen.append(label)
    assert seen


def test_the_scheduler_bundles_as_the_values_say(
    ci_docs: list[Doc], render_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scheduler.bundles reaches the scheduler's settings; the defaults are the farm's own."""
    name = f"{FULLNAME}-scheduler"
    scheduler = one(ci_docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    settings = settings_of(scheduler, ci_docs, monkeypatch)
    defaults = ServerSettings.model_fields
    assert (settings.bundle_max, settings.bundle_s) == (defaults["bundle_max"].default, defaults["bundle_s"].default)
    docs = render_with({"scheduler": {"bundles": {"maxChunks": 1, "seconds": 0.5}}})
    scheduler = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    settings = settings_of(scheduler, docs, monkeypatch)
    assert (settings.bundle_max, settings.bundle_s) == (1, 0.5)

