"""Cluster hardening in the chart (issue 15): Ray token authentication on every Ray process with the token generated
into the Secret, and NetworkPolicies that leave render nodes the Ray cluster, the store and DNS only, and the API
reachable from the ingress controller. (The objects are validated strictly with the rest in test_chart.py.)"""

from __future__ import annotations

import base64
from typing import Any

from .conftest import FULLNAME, Doc, containers, env_of, find, one, pod_specs, render

RAY = f"{FULLNAME}-ray"
SECRET = f"{FULLNAME}-credentials"
TOKEN_REF = {"secretKeyRef": {"name": SECRET, "key": "ray-auth-token"}}


def ray_containers(docs: list[Doc]) -> dict[str, Doc]:
    """Every container that runs a Ray process: head, worker groups, the scheduler and its raylet sidecar."""
    out = {}
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            if name.startswith("RayCluster/") or c["name"] in ("scheduler", "raylet"):
                out[f"{name}/{c['name']}"] = c
    return out


def test_every_ray_process_presents_the_generated_token(default_docs: list[Doc]) -> None:
    found = ray_containers(default_docs)
    assert {k.rsplit("/", 1)[1] for k in found} >= {"ray-head", "ray-worker", "scheduler", "raylet"}
    for name, container in found.items():
        env = env_of(container)
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert env.get("RAY_AUTH_TOKEN") == TOKEN_REF, name
    autoscaler = env_of(one(default_docs, "RayCluster", RAY)["spec"]["autoscalerOptions"])
    assert autoscaler["RAY_AUTH_MODE"] == "token" and autoscaler["RAY_AUTH_TOKEN"] == TOKEN_REF
    token = base64.b64decode(one(default_docs, "Secret", SECRET)["data"]["ray-auth-token"]).decode()
    assert len(token) == 64 and token.isalnum()
    for name, spec in pod_specs(default_docs):  # the API never joins Ray: it gets no token
        if name == f"Deployment/{FULLNAME}-api":
            assert all("RAY_AUTH_TOKEN" not in env_of(c) for c in containers(spec))


def test_a_given_token_wins_and_auth_can_be_switched_off() -> None:
    docs = render({"secrets": {"rayAuthToken": "t" * 40}})
    assert base64.b64decode(one(docs, "Secret", SECRET)["data"]["ray-auth-token"]).decode() == "t" * 40
    off = render({"head": {"tokenAuth": False}})
    assert all("RAY_AUTH_MODE" not in env_of(c) for c in ray_containers(off).values())


def policy(docs: list[Doc], suffix: str) -> dict[str, Any]:
    return one(docs, "NetworkPolicy", f"{FULLNAME}-{suffix}")["spec"]


def components(peers: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for peer in peers:
        for expr in peer.get("podSelector", {}).get("matchExpressions", []):
            if expr["key"] == "app.kubernetes.io/component":
                out |= set(expr["values"])
        component = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        if component:
            out.add(component)
    return out


def test_render_nodes_reach_the_ray_cluster_the_store_and_dns_only(default_docs: list[Doc]) -> None:
    spec = policy(default_docs, "render-nodes")
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert components([{"podSelector": spec["podSelector"]}]) == {"cpu-worker", "gpu-worker"}
    reached = set().union(*(components(rule["to"]) for rule in spec["egress"]))
    assert reached == {"ray-head", "cpu-worker", "gpu-worker", "scheduler", "minio"}  # no postgresql, no api
    dns = [r for r in spec["egress"] if {"port": 53, "protocol": "UDP"} in r.get("ports", [])]
    assert dns and all(p["port"] == 53 for r in dns for p in r["ports"])
    assert all(r.get("to") for r in spec["egress"])  # every rule names its peers: nothing open to the world
    assert components(spec["ingress"][0]["from"]) == {"ray-head", "cpu-worker", "gpu-worker", "scheduler"}


def test_the_api_is_reachable_from_the_ingress_controller(default_docs: list[Doc]) -> None:
    spec = policy(default_docs, "api")
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    assert components(policy(default_docs, "postgresql")["ingress"][0]["from"]) == {"api", "scheduler", "migrate"}
    assert components(policy(default_docs, "ray-head")["ingress"][0]["from"]) == {
        "ray-head",
        "cpu-worker",
        "gpu-worker",
        "scheduler",
    }


def test_an_external_store_is_reached_on_its_port_only_and_policies_can_be_off() -> None:
    docs = render(
        {
            "minio": {
                "enabled": False,
                "external": {"endpoint": "s3.example:9443", "secure": True, "accessKey": "AK", "secretKey": "sk"},
            },
            "postgresql": {"enabled": False, "external": {"url": "postgresql+psycopg://u:p@db:5432/farm"}},
        }
    )
    egress = policy(docs, "render-nodes")["egress"]
    store = [r for r in egress if "to" not in r]
    assert store == [{"ports": [{"port": 9443, "protocol": "TCP"}]}]
    assert not find(docs, "NetworkPolicy", f"{FULLNAME}-postgresql")
    assert not find(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")
