"""KEDA autoscaling of the vLLM Deployments on queue depth (``k8s/components/autoscale-keda``).

Renders the gpu overlay (which enables the component) and ``fixtures/gpu-scale-to-zero`` (the
overlay plus the opt-in ``autoscale-keda-scale-to-zero`` component), validates every
ScaledObject against KEDA's own CRD (``schemas/keda.sh_scaledobjects.yaml``) and checks what
the schema cannot: each one scales an existing vLLM Deployment, no other HPA does, the trigger
reads ``vllm:num_requests_waiting`` of that Deployment's pods only, the replica bounds (never
zero unless opted in) and a scale-down slower than the scale-up.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy._support import (
    K8S,
    SCHEMAS,
    Doc,
    by_kind,
    crd_schemas,
    custom_resource_errors,
    one,
    render,
    require_tool,
    run,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CRD = SCHEMAS / "keda.sh_scaledobjects.yaml"
API_VERSION = "keda.sh/v1alpha1"
COMPONENT = K8S / "components/autoscale-keda"
SCALE_TO_ZERO = K8S / "components/autoscale-keda-scale-to-zero"
DEFAULT = "overlays/gpu"
# ``render`` takes a path under deploy/k8s; the fixture is reached from there.
TO_ZERO = os.path.relpath(FIXTURES / "gpu-scale-to-zero", K8S)
RENDERS = (DEFAULT, TO_ZERO)
QUEUE_METRIC = "vllm:num_requests_waiting"
GATEWAY_METRIC = "llmops_in_flight_requests"
COLD_START_METRIC = "llmops_cold_start_waiting"  # gateway/_cold_start.py

# A PromQL label matcher: name, operator, quoted value (the queries use no escapes).
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def _scaled_objects(docs: list[Doc]) -> list[Doc]:
    found = by_kind(docs, "ScaledObject")
    assert found, "no ScaledObject rendered"
    return found


def _engines(docs: list[Doc]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm"
    }


def _selectors(query: str, metric: str) -> dict[str, tuple[str, str]]:
    """The label matchers of ``metric`` in ``query``: label -> (operator, value)."""
    m = re.search(rf"{re.escape(metric)}\s*\{{([^}}]*)\}}", query)
    assert m, f"{metric}{{...}} not in {query!r}"
    return {name: (op, value) for name, op, value in MATCHER.findall(m.group(1))}


def _matches(op: str, value: str, label: str) -> bool:
    """A PromQL matcher against a label value (regexes are anchored, as in PromQL)."""
    if op == "=":
        return label == value
    if op == "!=":
        return label != value
    hit = re.fullmatch(value, label) is not None
    return hit if op == "=~" else not hit


def _pod_names(deployment: str) -> list[str]:
    """Names the ReplicaSet controller gives pods of ``deployment``: template hash, suffix."""
    return [f"{deployment}-7d9c8b6f5d-x2k4q", f"{deployment}-5b8f9c7d6-q9z7w"]


def _trigger(scaled: Doc, metric: str) -> Doc:
    found = [t for t in scaled["spec"]["triggers"] if metric in t["metadata"].get("query", "")]
    assert len(found) == 1, f"{scaled['metadata']['name']}: {len(found)} triggers on {metric}"
    return found[0]


def _pods_per_minute(rules: Doc, most: int) -> float:
    """The fastest change an HPA scaling rule allows, in pods a minute (``Percent`` policies
    taken at ``most`` replicas)."""
    rates = []
    for p in rules["policies"]:
        pods = p["value"] if p["type"] == "Pods" else math.ceil(most * p["value"] / 100)
        rates.append(pods * 60 / p["periodSeconds"])
    select = rules.get("selectPolicy", "Max")
    assert select in ("Max", "Min"), f"selectPolicy {select}"
    return max(rates) if select == "Max" else min(rates)


def _render_dir(path: Path) -> list[Doc]:
    kubectl = require_tool("kubectl", "install kubectl >= 1.27 (kustomize v5 built in)")
    result = run([kubectl, "kustomize", str(path)])
    assert result.returncode == 0, f"kubectl kustomize {path}:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


# --- The vendored CRD ----------------------------------------------------------------------------


def test_crd_is_keda_2x_scaled_object() -> None:
    header = CRD.read_text().split("\n---", 1)[0]
    assert re.search(r"KEDA v2\.\d+\.\d+ ", header), "the header names the KEDA release"
    (crd,) = [d for d in yaml.safe_load_all(CRD.read_text()) if d]
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "scaledobjects.keda.sh"
    assert (API_VERSION, "ScaledObject") in crd_schemas()
    (stored,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert f"keda.sh/{stored['name']}" == API_VERSION and stored["served"]


def test_crd_check_catches_mistakes() -> None:
    """Guard for the schema test: a misspelt field, a wrong type, a missing trigger fail."""
    scaled = _scaled_objects(render(DEFAULT))[0]
    assert custom_resource_errors(scaled) == []
    for mutate in (
        lambda s: s["spec"].update(minReplicas=1),
        lambda s: s["spec"].update(maxReplicaCount="4"),
        lambda s: s["spec"]["triggers"][0]["metadata"].update(threshold=4),
        lambda s: s["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
            "scaleDown"
        ].update(stabilisationWindowSeconds=60),
        lambda s: s["spec"].pop("triggers"),
    ):
        broken = yaml.safe_load(yaml.safe_dump(scaled))
        mutate(broken)
        assert custom_resource_errors(broken), broken["spec"]


# --- Every render --------------------------------------------------------------------------------


@pytest.fixture(params=RENDERS, ids=("default", "scale-to-zero"))
def autoscaled(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(request.param)


def test_scaled_objects_match_the_keda_crd(autoscaled: tuple[str, list[Doc]]) -> None:
    _, docs = autoscaled
    errors = []
    for scaled in _scaled_objects(docs):
        assert scaled["apiVersion"] == API_VERSION
        found = custom_resource_errors(scaled)
        assert found is not None, "no CRD for ScaledObject in schemas/"
        errors += found
    assert not errors, "\n".join(errors)


def test_each_vllm_deployment_has_one_scaled_object(autoscaled: tuple[str, list[Doc]]) -> None:
    _, docs = autoscaled
    engines = _engines(docs)
    targets = []
    for scaled in _scaled_objects(docs):
        ref = scaled["spec"]["scaleTargetRef"]
        assert ref.get("apiVersion", "apps/v1") == "apps/v1", ref
        assert ref.get("kind", "Deployment") == "Deployment", ref
        assert ref["name"] in engines, f"{ref['name']}: no such vLLM Deployment rendered"
        deployment = engines[ref["name"]]
        assert scaled["metadata"]["namespace"] == deployment["metadata"]["namespace"]
        targets.append(ref["name"])
    assert sorted(targets) == sorted(engines), "one ScaledObject per vLLM Deployment"


def test_no_other_hpa_scales_the_vllm_deployments(autoscaled: tuple[str, list[Doc]]) -> None:
    """KEDA creates an HPA per ScaledObject; a second HPA on the same Deployment would fight it."""
    _, docs = autoscaled
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in _scaled_objects(docs)}
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert not (ref["kind"] == "Deployment" and ref["name"] in scaled), hpa["metadata"]["name"]
    one(docs, "HorizontalPodAutoscaler", "llmops-gateway")  # the gateway keeps its own


def test_trigger_is_the_queue_depth_of_the_deployments_pods(
    autoscaled: tuple[str, list[Doc]],
) -> None:
    _, docs = autoscaled
    engines = _engines(docs)
    for scaled in _scaled_objects(docs):
        name = scaled["spec"]["scaleTargetRef"]["name"]
        trigger = _trigger(scaled, QUEUE_METRIC)
        assert trigger["type"] == "prometheus", name
        # AverageValue (the default): KEDA's HPA keeps ``threshold`` waiting per replica.
        assert trigger.get("metricType", "AverageValue") == "AverageValue", name
        meta = trigger["metadata"]
        query = meta["query"]
        assert re.match(rf"\s*sum\s*\(\s*{re.escape(QUEUE_METRIC)}\s*\{{", query), query
        labels = _selectors(query, QUEUE_METRIC)
        assert labels["namespace"] == ("=", scaled["metadata"]["namespace"]), query
        op, pods = labels["pod"]
        for pod in _pod_names(name):
            assert _matches(op, pods, pod), f"{name}: {query} misses its pod {pod}"
        for other in engines.keys() - {name}:
            for pod in _pod_names(other):
                assert not _matches(op, pods, pod), f"{name}: {query} counts {other}'s pod {pod}"
        assert float(meta["threshold"]) > 0, name
        assert float(meta["activationThreshold"]) >= 0, name


def test_every_trigger_asks_one_prometheus(autoscaled: tuple[str, list[Doc]]) -> None:
    """One server address (the one an overlay patches) in every trigger, an http(s) URL."""
    _, docs = autoscaled
    addresses = {
        t["metadata"]["serverAddress"] for s in _scaled_objects(docs) for t in s["spec"]["triggers"]
    }
    assert len(addresses) == 1, addresses
    url = urlparse(addresses.pop())
    assert url.scheme in ("http", "https") and url.hostname and url.port, url


def test_scale_down_is_slower_than_scale_up(autoscaled: tuple[str, list[Doc]]) -> None:
    """A GPU pod loads its weights for minutes: add pods fast, remove them slowly."""
    _, docs = autoscaled
    for scaled in _scaled_objects(docs):
        name, spec = scaled["metadata"]["name"], scaled["spec"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        up, down = behavior["scaleUp"], behavior["scaleDown"]
        # The HPA's defaults when unset: no window up, 300 s down.
        up_window = up.get("stabilizationWindowSeconds", 0)
        down_window = down.get("stabilizationWindowSeconds", 300)
        assert down_window > up_window, (name, up_window, down_window)
        assert down_window >= 600, f"{name}: scale down waits {down_window}s only"
        most = spec["maxReplicaCount"]
        assert _pods_per_minute(down, most) < _pods_per_minute(up, most), name


def test_replica_bounds(autoscaled: tuple[str, list[Doc]]) -> None:
    """Never zero by default; zero only with the scale-to-zero component, after an idle period."""
    kustomization, docs = autoscaled
    engines = _engines(docs)
    for scaled in _scaled_objects(docs):
        name, spec = scaled["metadata"]["name"], scaled["spec"]
        low, high = spec.get("minReplicaCount", 0), spec["maxReplicaCount"]
        assert high >= max(low, 1), (name, low, high)  # the CRD's CEL rule, not run by jsonschema
        assert "idleReplicaCount" not in spec, name
        # The Deployment's replicas (the count it starts with) is one KEDA keeps.
        assert low <= engines[name]["spec"].get("replicas", 1) <= high, name
        if kustomization == DEFAULT:
            assert low >= 1, f"{name}: scale to zero is opt-in (autoscale-keda-scale-to-zero)"
        else:
            assert low == 0, name
            assert spec["cooldownPeriod"] >= 600, f"{name}: idle only {spec['cooldownPeriod']}s"


def test_scale_to_zero_wakes_on_the_gateways_requests() -> None:
    """At zero pods no vLLM series exists: the gateway's in-flight count for the Deployment's
    upstream (the URL the gateway config names, the Service in front of its pods) activates it
    and keeps a busy model with an empty queue from scaling to zero."""
    docs = render(TO_ZERO)
    (configmap,) = [
        d
        for d in by_kind(docs, "ConfigMap")
        if d["metadata"]["name"].startswith("llmops-gateway-config")
    ]
    config = yaml.safe_load(configmap["data"]["gateway.yaml"])
    upstreams = {u["url"] for m in config["models"] for u in m.get("upstreams", [])}
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    engines = _engines(docs)
    for scaled in _scaled_objects(docs):
        name = scaled["spec"]["scaleTargetRef"]["name"]
        trigger = _trigger(scaled, GATEWAY_METRIC)
        assert trigger["type"] == "prometheus"
        query, meta = trigger["metadata"]["query"], trigger["metadata"]
        assert re.match(rf"\s*\(?\s*sum\s*\(\s*{re.escape(GATEWAY_METRIC)}\s*\{{", query), query
        labels = _selectors(query, GATEWAY_METRIC)
        assert labels["namespace"] == ("=", scaled["metadata"]["namespace"]), query
        op, url = labels["replica"]
        assert op == "=" and url in upstreams, f"{name}: {url} is no upstream of the gateway"
        service = services[urlparse(url).hostname or ""]
        template = engines[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= template.items(), (name, url)
        assert float(meta["activationThreshold"]) == 0, "the first request wakes it"
        # The requests the gateway holds for the model behind that URL wake it from zero.
        held = _selectors(query, COLD_START_METRIC)
        (model,) = [m["name"] for m in config["models"]
                    if url in {u["url"] for u in m.get("upstreams", [])}]  # fmt: skip
        assert held["model"] == ("=", model), query
        assert held["namespace"] == ("=", scaled["metadata"]["namespace"]), query
        assert "or vector(0)" in query, "one side without series must not empty the sum"
    # Without the component the default render has no such trigger.
    for scaled in _scaled_objects(render(DEFAULT)):
        assert all(GATEWAY_METRIC not in t["metadata"]["query"] for t in scaled["spec"]["triggers"])


def test_an_overlay_sets_the_prometheus_address(tmp_path: Path) -> None:
    """The patch deploy/README.md gives replaces the placeholder in every trigger."""
    address = "http://prometheus.example.svc:9090"
    ops = [
        {"op": "replace", "path": f"/spec/triggers/{i}/metadata/serverAddress", "value": address}
        for i in (0, 1)
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes no absolute path here.
        "resources": [os.path.relpath(FIXTURES / "gpu-scale-to-zero", tmp_path)],
        "patches": [
            {"target": {"group": "keda.sh", "kind": "ScaledObject"}, "patch": yaml.safe_dump(ops)}
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    for scaled in _scaled_objects(_render_dir(tmp_path)):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["serverAddress"] == address


def test_components_are_kustomize_components() -> None:
    for folder in (COMPONENT, SCALE_TO_ZERO):
        data = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert data["apiVersion"] == "kustomize.config.k8s.io/v1alpha1", folder.name
        assert data["kind"] == "Component", folder.name
    text = (SCALE_TO_ZERO / "kustomization.yaml").read_text()
    assert "cold_start_timeout_s" in text, "name the gateway setting a cold start needs"
