"""The Helm chart: lint, render with default and CI values, validate every object against Kubernetes' schemas
(kubernetes-validate --strict) and the RayCluster against KubeRay's CRD, and check the deployment contract
(GPU requests, probes, limits, non-root, one scheduler, toggles, secrets)."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import (
    CHART,
    FULLNAME,
    KUBE_VERSION,
    Doc,
    ci_values,
    containers,
    env_of,
    find,
    merge,
    one,
    pod_specs,
    render,
    render_text,
)

API = f"{FULLNAME}-api"
SCHEDULER = f"{FULLNAME}-scheduler"
RAY = f"{FULLNAME}-ray"
HEAD_SVC = f"{RAY}-head-svc"
SECRET = f"{FULLNAME}-credentials"

# Objects kubernetes-validate knows (the RayCluster and monitoring.coreos.com objects are custom resources).
CORE_KINDS = {
    "Deployment",
    "StatefulSet",
    "Service",
    "Secret",
    "ConfigMap",
    "HorizontalPodAutoscaler",
    "Ingress",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "Job",
    "NetworkPolicy",  # issue 15
}
CUSTOM_KINDS = {"RayCluster", "ServiceMonitor", "PrometheusRule"}


def external_values() -> dict[str, Any]:
    """CI values with external S3 and PostgreSQL instead of the in-release ones."""
    return merge(
        ci_values(),
        {
            "minio": {
                "enabled": False,
                "external": {
                    "endpoint": "s3.studio.example:9000",
                    "secure": True,
                    "accessKey": "AKIAEXAMPLE",
                    "secretKey": "s3cr3t",
                },
            },
            "postgresql": {
                "enabled": False,
                "external": {"url": "postgresql+psycopg://farm:pw@db.studio.example:5432/farm"},
            },
        },
    )


# --- lint and schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "ci"])
def test_lint_is_clean(which: str) -> None:
    values = None if which == "default" else ci_values()
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_every_value_has_a_doc_comment() -> None:
    """STYLE 17: each value in values.yaml carries a `# --` comment (helm-docs), list items excepted."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    list_indent: int | None = None
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped or stripped.startswith("#"):
            continue
        if list_indent is not None and indent > list_indent:
            continue  # inside a list item: data, not a value of its own
        list_indent = None
        if stripped.startswith("- "):
            list_indent = indent
            continue
        if not re.match(r"^[\w.\-/]+:", stripped):
            continue
        block = []
        for previous in reversed(lines[: number - 1]):
            if previous.strip().startswith("#"):
                block.append(previous.strip())
            else:
                break
        if not any(c.startswith("# --") for c in block):
            missing.append(f"{number}: {stripped}")
    assert missing == [], "values without a `# --` comment:\n" + "\n".join(missing)


def test_values_by_role() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    roles = {"global", "image", "head", "cpuWorkers", "gpuWorkers", "api", "scheduler", "minio", "postgresql"}
    roles |= {"secrets", "monitoring", "ingress"}
    assert roles <= values.keys()


@pytest.mark.parametrize(
    "bad",
    [
        {"api": {"port": "http"}},
        {"scheduler": {"replicas": 0}},
        {"scheduler": {"bundles": {"maxChunks": 0}}},
        {"scheduler": {"bundles": {"maxChunks": 1000}}},
        {"scheduler": {"bundles": {"seconds": -1}}},
        {"scheduler": {"bundles": {"size": 4}}},
        {"gpuWorkers": {"kernelCache": {"type": "nfs"}}},
        {"cpuWorkers": {"resources": {"limits": {"cpu": "lots"}}}},
        {"minio": {"external": {"endpoint": "https://s3.example"}}},
        {"typo": True},
    ],
)
def test_schema_rejects_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(bad)


# --- Kubernetes and CRD validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "ci", "external"])
def test_core_objects_validate_strictly(which: str) -> None:
    docs = {
        "default": render,
        "ci": lambda: render(ci_values()),
        "external": lambda: render(external_values()),
    }[which]()
    kinds = {d["kind"] for d in docs}
    assert kinds <= CORE_KINDS | CUSTOM_KINDS, kinds - CORE_KINDS - CUSTOM_KINDS
    for doc in docs:
        if doc["kind"] in CORE_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    # RayCluster pod templates are core PodTemplateSpecs: validate them as Pods too.
    for label, spec in pod_specs(find(docs, "RayCluster")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": label.rsplit("/", 1)[-1]},
            "spec": spec,
        }
        kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)


def test_strict_validation_catches_misspelt_fields(default_docs: list[Doc]) -> None:
    deployment = copy.deepcopy(one(default_docs, "Deployment", API))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_default_render_has_every_role(default_docs: list[Doc]) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in default_docs}
    assert {
        ("RayCluster", RAY),
        ("Deployment", API),
        ("Service", API),
        ("HorizontalPodAutoscaler", API),
        ("Deployment", SCHEDULER),
        ("StatefulSet", f"{FULLNAME}-minio"),
        ("Service", f"{FULLNAME}-minio"),
        ("StatefulSet", f"{FULLNAME}-postgresql"),
        ("Service", f"{FULLNAME}-postgresql"),
        ("Secret", SECRET),
        ("ConfigMap", f"{FULLNAME}-dashboards"),
        ("PersistentVolumeClaim", f"{FULLNAME}-kernel-cache"),
    } <= names
    # Off by default: they need the Prometheus Operator CRDs or an ingress controller.
    assert not find(default_docs, "ServiceMonitor") and not find(default_docs, "PrometheusRule")
    assert not find(default_docs, "Ingress")


def strict_crd_schema(schema: Any) -> Any:
    """The CRD schema with `additionalProperties: false` wherever it lists properties: the API server prunes (or,
    with strict field validation, rejects) unknown fields, so a misspelt field must fail here."""
    if isinstance(schema, dict):
        out = {k: strict_crd_schema(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict_crd_schema(v) for v in schema]
    return schema


def validate_raycluster(doc: Doc, schema: dict[str, Any]) -> None:
    """Validate a RayCluster against the CRD's openAPIV3Schema, metadata checked by Kubernetes itself."""
    body = {k: v for k, v in doc.items() if k != "metadata"}
    jsonschema.validate(body, strict_crd_schema(schema), cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("which", ["default", "ci", "cpu-only", "autoscaling", "hostpath-caches"])
def test_raycluster_matches_crd(which: str, raycluster_schema: dict[str, Any]) -> None:
    values = {
        "default": {},
        "ci": ci_values(),
        "cpu-only": {"gpuWorkers": {"enabled": False}},
        "autoscaling": {"head": {"enableInTreeAutoscaling": True}},
        "hostpath-caches": {
            "cpuWorkers": {"assetCache": {"type": "hostPath"}},
            "gpuWorkers": {"assetCache": {"type": "hostPath"}, "kernelCache": {"type": "hostPath"}},
        },
    }[which]
    (cluster,) = find(render(values), "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    validate_raycluster(cluster, raycluster_schema)


def test_crd_check_catches_misspelt_fields(default_docs: list[Doc], raycluster_schema: dict[str, Any]) -> None:
    cluster = copy.deepcopy(one(default_docs, "RayCluster", RAY))
    cluster["spec"]["workerGroupSpecs"][0]["rayStartParam"] = {"num-cpus": "1"}
    with pytest.raises(jsonschema.ValidationError):
        validate_raycluster(cluster, raycluster_schema)
    cluster = copy.deepcopy(one(default_docs, "RayCluster", RAY))
    cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-gpus"] = 1  # KubeRay wants strings
    with pytest.raises(jsonschema.ValidationError):
        validate_raycluster(cluster, raycluster_schema)


# --- Ray cluster ---------------------------------------------------------------------------------------------


def groups(docs: list[Doc]) -> dict[str, Doc]:
    return {g["groupName"]: g for g in one(docs, "RayCluster", RAY)["spec"].get("workerGroupSpecs", [])}


def test_head_does_no_rendering(default_docs: list[Doc]) -> None:
    head = one(default_docs, "RayCluster", RAY)["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    (container,) = head["template"]["spec"]["containers"]
    assert {p["containerPort"] for p in container["ports"]} >= {6379, 8265, 10001}


def test_gpu_group_requests_gpus(default_docs: list[Doc]) -> None:
    gpu = groups(default_docs)["gpu"]
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    spec = gpu["template"]["spec"]
    ray = spec["containers"][0]
    assert ray["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert ray["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    # The CPU group asks for no GPU.
    cpu = groups(default_docs)["cpu"]
    assert "num-gpus" not in cpu["rayStartParams"]
    assert "nvidia.com/gpu" not in cpu["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_gpu_count_follows_values() -> None:
    gpu = groups(render({"gpuWorkers": {"gpusPerPod": 2, "runtimeClassName": "nvidia"}}))["gpu"]
    assert gpu["rayStartParams"]["num-gpus"] == "2"
    ray = gpu["template"]["spec"]["containers"][0]
    assert ray["resources"]["limits"]["nvidia.com/gpu"] == "2" == ray["resources"]["requests"]["nvidia.com/gpu"]
    assert gpu["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_gpu_workers_mount_persistent_kernel_cache(default_docs: list[Doc]) -> None:
    spec = groups(default_docs)["gpu"]["template"]["spec"]
    ray = spec["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in ray["volumeMounts"]}
    assert mounts["kernel-cache"] == "/var/cache/farm/kernels"
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim = volumes["kernel-cache"]["persistentVolumeClaim"]["claimName"]
    pvc = one(default_docs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    env = env_of(ray)
    for var in ("XDG_CACHE_HOME", "CUDA_CACHE_PATH", "OPTIX_CACHE_PATH"):
        assert env[var].startswith("/var/cache/farm/kernels/"), var
    assert env["CUDA_CACHE_MAXSIZE"] == "4294967296"
    assert env["FARM_WORKER_CACHE_DIR"] == mounts["asset-cache"]
    # CPU workers have the asset cache but no kernel cache.
    cpu = groups(default_docs)["cpu"]["template"]["spec"]["containers"][0]
    assert "kernel-cache" not in {m["name"] for m in cpu["volumeMounts"]}
    assert env_of(cpu)["FARM_WORKER_CACHE_DIR"] == "/var/cache/farm/assets"


@pytest.mark.parametrize(
    ("override", "source"),
    [
        (
            {"type": "hostPath", "hostPath": "/srv/kernels"},
            {"hostPath": {"path": "/srv/kernels", "type": "Directory"}},
        ),
        (
            {"persistentVolumeClaim": {"existingClaim": "shared-kernels"}},
            {"persistentVolumeClaim": {"claimName": "shared-kernels"}},
        ),
    ],
)
def test_kernel_cache_volume_kinds(override: dict[str, Any], source: dict[str, Any]) -> None:
    docs = render({"gpuWorkers": {"kernelCache": override}})
    volumes = {v["name"]: v for v in groups(docs)["gpu"]["template"]["spec"]["volumes"]}
    assert {k: v for k, v in volumes["kernel-cache"].items() if k != "name"} == source
    assert not find(docs, "PersistentVolumeClaim")  # nothing to create


def test_worker_groups_toggle() -> None:
    assert set(groups(render({"gpuWorkers": {"enabled": False}}))) == {"cpu"}
    docs = render({"cpuWorkers": {"enabled": False}, "gpuWorkers": {"enabled": False}})
    assert "workerGroupSpecs" not in one(docs, "RayCluster", RAY)["spec"]
    assert not find(docs, "PersistentVolumeClaim")


def test_workers_get_no_store_or_database_credentials(default_docs: list[Doc]) -> None:
    # Issue 15: render nodes run untrusted .blend files; each assignment carries presigned URLs instead of keys.
    for name, group in groups(default_docs).items():
        container = group["template"]["spec"]["containers"][0]
        env = env_of(container)
        assert {"FARM_MODE", "FARM_S3_ENDPOINT", "FARM_S3_BUCKET"} <= set(env), name
        assert not {"FARM_S3_ACCESS_KEY", "FARM_S3_SECRET_KEY", "FARM_DATABASE_URL", "FARM_SECRET_KEY"} & set(env), name
        assert "s3-secret-key" not in str(container) and "s3-access-key" not in str(container), name
        assert "envFrom" not in container, name


# --- API -----------------------------------------------------------------------------------------------------


def test_api_probes_and_command(default_docs: list[Doc]) -> None:
    (api,) = one(default_docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
    assert api["command"] + api["args"] == ["farm", "api", "--host", "0.0.0.0", "--port", "8321"]
    assert api["ports"] == [{"name": "http", "containerPort": 8321, "protocol": "TCP"}]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_api_and_scheduler_get_full_settings(default_docs: list[Doc]) -> None:
    for name in (API, SCHEDULER):
        spec = one(default_docs, "Deployment", name)["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        assert env["FARM_MODE"] == "cluster"
        assert env["FARM_S3_ENDPOINT"] == f"{FULLNAME}-minio:9000"
        assert env["FARM_S3_SECURE"] == "false"
        assert env["FARM_RAY_ADDRESS"] == f"{HEAD_SVC}:6379"
        for var, key in [
            ("FARM_DATABASE_URL", "database-url"),
            ("FARM_SECRET_KEY", "secret-key"),
            ("FARM_S3_ACCESS_KEY", "s3-access-key"),
            ("FARM_S3_SECRET_KEY", "s3-secret-key"),
            ("FARM_BOOTSTRAP_ADMIN_TOKEN", "bootstrap-admin-token"),
        ]:
            assert env[var]["secretKeyRef"]["name"] == SECRET and env[var]["secretKeyRef"]["key"] == key


def test_api_service_hpa_pdb(default_docs: list[Doc]) -> None:
    deployment = one(default_docs, "Deployment", API)
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    service = one(default_docs, "Service", API)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = one(default_docs, "HorizontalPodAutoscaler", API)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}
    pdb = one(default_docs, "PodDisruptionBudget", API)
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    fixed = render({"api": {"autoscaling": {"enabled": False}, "replicas": 3}})
    assert one(fixed, "Deployment", API)["spec"]["replicas"] == 3
    assert not find(fixed, "HorizontalPodAutoscaler")


def test_ingress_routes_to_api(ci_docs: list[Doc], default_docs: list[Doc]) -> None:
    ingress = one(ci_docs, "Ingress", API)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "farm.ci.example"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": API, "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "farm-ci-tls"
    assert not find(default_docs, "Ingress")


# --- scheduler -----------------------------------------------------------------------------------------------


def test_scheduler_replicas_elect_a_leader_and_are_probed(default_docs: list[Doc]) -> None:
    """Two replicas (one leads through the database lease, one stands by); a rolling update starts the new pod
    as a standby before the old one releases the lease; liveness and readiness ask the health endpoint."""
    scheduler = one(default_docs, "Deployment", SCHEDULER)
    assert scheduler["spec"]["replicas"] == 2
    assert scheduler["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    spec = scheduler["spec"]["template"]["spec"]
    (main,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["FARM_SCHEDULER_HEALTH_HOST"] == "0.0.0.0" and env["FARM_SCHEDULER_HEALTH_PORT"] == "8322"
    assert main["ports"] == [{"name": "health", "containerPort": 8322}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert main["command"] + main["args"] == ["farm", "scheduler", "--ray-address", f"{HEAD_SVC}:6379"]
    # A driver on a GCS address needs a raylet on its own node: a zero-resource native sidecar.
    (raylet,) = spec["initContainers"]
    assert raylet["restartPolicy"] == "Always"
    assert raylet["command"] == ["ray"]
    assert {"start", f"--address={HEAD_SVC}:6379", "--num-cpus=0", "--num-gpus=0", "--block"} <= set(raylet["args"])
    shared = {m["mountPath"] for m in raylet["volumeMounts"]} & {m["mountPath"] for m in main["volumeMounts"]}
    assert {"/tmp", "/dev/shm"} <= shared


def test_scheduler_with_ray_client_address() -> None:
    docs = render({"scheduler": {"rayAddress": f"ray://{HEAD_SVC}:10001", "localRaylet": {"enabled": False}}})
    spec = one(docs, "Deployment", SCHEDULER)["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    assert spec["containers"][0]["args"][-1] == f"ray://{HEAD_SVC}:10001"


# --- every container -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "ci", "autoscaling"])
def test_every_container_is_limited_and_unprivileged(which: str) -> None:
    values = {
        "default": {},
        "ci": ci_values(),
        "autoscaling": {"head": {"enableInTreeAutoscaling": True}},
    }[which]
    docs = render(values)
    checked = 0
    for label, spec in pod_specs(docs):
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser") == 1000, label
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, label
        assert spec.get("automountServiceAccountToken") is False, label
        mounts_by_volume = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            where = f"{label}:{c['name']}"
            limits = c.get("resources", {}).get("limits", {})
            requests = c.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= limits.keys() and {"cpu", "memory"} <= requests.keys(), where
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 1000, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert sc.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in mounts_by_volume[tmp[0]["name"]], f"{where}: no writable /tmp"
            checked += 1
    assert checked >= 6
    if which == "autoscaling":
        options = one(docs, "RayCluster", RAY)["spec"]["autoscalerOptions"]
        assert options["resources"]["limits"] and options["securityContext"]["runAsNonRoot"] is True


def test_role_security_context_override() -> None:
    docs = render({"api": {"securityContext": {"readOnlyRootFilesystem": False}}})
    (api,) = one(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
    assert api["securityContext"]["readOnlyRootFilesystem"] is False
    assert api["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    (scheduler,) = one(docs, "Deployment", SCHEDULER)["spec"]["template"]["spec"]["containers"]
    assert scheduler["securityContext"]["readOnlyRootFilesystem"] is True


def test_extra_env_reaches_every_farm_container(ci_docs: list[Doc]) -> None:
    cluster = one(ci_docs, "RayCluster", RAY)
    farm_containers = [
        one(ci_docs, "Deployment", API)["spec"]["template"]["spec"]["containers"][0],
        one(ci_docs, "Deployment", SCHEDULER)["spec"]["template"]["spec"]["containers"][0],
        cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0],
        *(g["template"]["spec"]["containers"][0] for g in cluster["spec"]["workerGroupSpecs"]),
    ]
    for c in farm_containers:
        assert env_of(c)["FARM_LOG_LEVEL"] == "DEBUG", c["name"]
    assert env_of(farm_containers[0])["FARM_API_WORKERS"] == "1"
    assert "FARM_API_WORKERS" not in env_of(farm_containers[1])


# --- MinIO, PostgreSQL and the Secret -------------------------------------------------------------------------


def secret_data(docs: list[Doc]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret", SECRET)["data"].items()}


def test_generated_secret(default_docs: list[Doc]) -> None:
    data = secret_data(default_docs)
    assert set(data) == {
        "secret-key",
        "metrics-token",
        "bootstrap-admin-token",
        "postgres-password",
        "database-url",
        "s3-access-key",
        "s3-secret-key",
        "ray-auth-token",  # issue 15: Ray token authentication
    }
    assert len(data["secret-key"]) == 64 and data["secret-key"].isalnum()
    assert len(data["metrics-token"]) == 48 and data["metrics-token"].isalnum()
    assert len(data["postgres-password"]) == 32
    assert data["database-url"] == (
        f"postgresql+psycopg://farm:{data['postgres-password']}@{FULLNAME}-postgresql:5432/farm"
    )
    secret = one(default_docs, "Secret", SECRET)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Kept across upgrades: the template looks up the stored Secret before generating anything.
    source = (CHART / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret"' in source and "randAlphaNum" in source


def test_secret_values_given_win() -> None:
    docs = render(
        {
            "secrets": {
                "secretKey": "k" * 40,
                "bootstrapAdminToken": "",
                "generateBootstrapAdminToken": False,
            },
            "postgresql": {"auth": {"password": "p@ss word"}},
            "minio": {"auth": {"rootUser": "farmroot", "rootPassword": "farmrootpw"}},
        }
    )
    data = secret_data(docs)
    assert data["secret-key"] == "k" * 40
    assert "bootstrap-admin-token" not in data
    assert data["postgres-password"] == "p@ss word"
    assert data["database-url"].startswith("postgresql+psycopg://farm:p%40ss+word@")
    assert (data["s3-access-key"], data["s3-secret-key"]) == ("farmroot", "farmrootpw")


def test_existing_secret_replaces_the_generated_one() -> None:
    docs = render({"secrets": {"existingSecret": "studio-farm-credentials"}})
    assert not find(docs, "Secret")
    refs = set()
    for _, spec in pod_specs(docs):
        for c in containers(spec):
            for e in c.get("env", []):
                if "valueFrom" in e:
                    refs.add(e["valueFrom"]["secretKeyRef"]["name"])
    assert refs == {"studio-farm-credentials"}


def test_in_release_minio_and_postgresql(default_docs: list[Doc]) -> None:
    minio = one(default_docs, "StatefulSet", f"{FULLNAME}-minio")
    (server,) = minio["spec"]["template"]["spec"]["containers"]
    assert env_of(server)["MINIO_ROOT_USER"]["secretKeyRef"]["key"] == "s3-access-key"
    assert server["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert minio["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "200Gi"
    job = one(default_docs, "Job", f"{FULLNAME}-minio-bucket")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    postgres = one(default_docs, "StatefulSet", f"{FULLNAME}-postgresql")
    (db,) = postgres["spec"]["template"]["spec"]["containers"]
    assert env_of(db)["POSTGRES_PASSWORD"]["secretKeyRef"]["key"] == "postgres-password"
    assert env_of(db)["PGDATA"].startswith("/var/lib/postgresql/data/")
    service = one(default_docs, "Service", f"{FULLNAME}-postgresql")
    assert service["spec"]["ports"][0]["port"] == 5432


def test_external_minio_and_postgresql() -> None:
    docs = render(external_values())
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for kind in ("StatefulSet", "Service"):
        assert (kind, f"{FULLNAME}-minio") not in names
        assert (kind, f"{FULLNAME}-postgresql") not in names
    assert [j["metadata"]["name"] for j in find(docs, "Job")] == [f"{FULLNAME}-migrate"]  # no bucket Job
    cluster = one(docs, "RayCluster", RAY)
    farm_containers = [
        one(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"][0],
        one(docs, "Deployment", SCHEDULER)["spec"]["template"]["spec"]["containers"][0],
        *(g["template"]["spec"]["containers"][0] for g in cluster["spec"]["workerGroupSpecs"]),
    ]
    for c in farm_containers:
        env = env_of(c)
        assert env["FARM_S3_ENDPOINT"] == "s3.studio.example:9000", c["name"]
        assert env["FARM_S3_SECURE"] == "true", c["name"]
    data = secret_data(docs)
    assert data["database-url"] == "postgresql+psycopg://farm:pw@db.studio.example:5432/farm"
    assert (data["s3-access-key"], data["s3-secret-key"]) == ("AKIAEXAMPLE", "s3cr3t")
    assert "postgres-password" not in data


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"minio": {"enabled": False, "external": {"accessKey": "a", "secretKey": "b"}}},
            "minio.external.endpoint",
        ),
        (
            {"minio": {"enabled": False, "external": {"endpoint": "s3.example:443"}}},
            "minio.external.accessKey",
        ),
        ({"postgresql": {"enabled": False}}, "postgresql.external.url"),
    ],
)
def test_external_services_must_be_configured(override: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(override)


# --- monitoring objects --------------------------------------------------------------------------------------


def test_monitoring_objects(ci_docs: list[Doc], render_with: Callable[[dict[str, Any]], list[Doc]]) -> None:
    monitor = one(ci_docs, "ServiceMonitor", API)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == one(ci_docs, "Service", API)["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The scrape sends the same token the API reads as FARM_METRICS_TOKEN.
    assert monitor["spec"]["endpoints"][0]["bearerTokenSecret"] == {"name": SECRET, "key": "metrics-token"}
    api_env = {e["name"]: e for c in one(ci_docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
               for e in c.get("env", [])}
    assert api_env["FARM_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "metrics-token"}
    rule = one(ci_docs, "PrometheusRule", f"{FULLNAME}-alerts")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    off = render_with({"monitoring": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}}})
    assert not find(off, "ServiceMonitor") and not find(off, "PrometheusRule")
    no_dashboards = render_with({"monitoring": {"dashboards": {"enabled": False}}})
    assert not find(no_dashboards, "ConfigMap")


def test_dashboards_configmap(ci_docs: list[Doc]) -> None:
    (cm,) = find(ci_docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = {p.name: p.read_text() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert set(files) == {"farm-overview.json", "farm-usage.json"}
    assert cm["data"] == files


def test_notes() -> None:
    notes = render_text()["render-farm/templates/NOTES.txt"]
    assert f"svc/{API}" in notes and SECRET in notes and "KubeRay" in notes
    assert "https://farm.ci.example/" in render_text(ci_values())["render-farm/templates/NOTES.txt"]
