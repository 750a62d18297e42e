"""Every kustomization renders, every object is valid Kubernetes, and the stack's rules hold.

Schemas: ``kubernetes-validate`` (offline, bundled JSON schemas), strict mode (unknown fields are
errors), for the oldest and a recent Kubernetes version the manifests support. 1.30 is the floor:
the prompts sidecar is a native sidecar (``restartPolicy: Always`` init container, on by
default since 1.29) and ``namespace.yaml`` enforces Pod Security "restricted".
Custom resources (KEDA's ScaledObject) are checked against their CRD, vendored in ``schemas/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from gateway._config import GatewayConfig, load_config
from tests.deploy._support import (
    K8S,
    KUSTOMIZATIONS,
    Doc,
    by_kind,
    containers,
    custom_resource_errors,
    env_value,
    one,
    pod_spec,
    render,
    require_module,
)

K8S_VERSIONS = ("1.30.0", "1.34.0")
GATEWAY_CONFIG_KEY = "gateway.yaml"


def _validation_errors(docs: list[Doc], version: str) -> list[str]:
    """Built-in kinds against Kubernetes' schemas; custom resources (KEDA's ScaledObject)
    against their CRD in ``schemas/``; a kind in neither fails (``SchemaNotFoundError``)."""
    errors = []
    for doc in docs:
        custom = custom_resource_errors(doc)
        if custom is not None:
            errors.extend(custom)
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_objects_match_kubernetes_schemas(kustomization: str, version: str) -> None:
    errors = _validation_errors(render(kustomization), version)
    assert not errors, "\n".join(errors)


def test_schema_check_catches_unknown_fields() -> None:
    """Guard for the test above: strict validation really rejects a misspelt field."""
    deployment = one(render("base"), "Deployment", "llmops-gateway")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert _validation_errors([broken], K8S_VERSIONS[0])


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_secret_template_is_valid_and_has_every_referenced_key(version: str) -> None:
    template = yaml.safe_load((K8S / "base/gateway/secret.example.yaml").read_text())
    assert not _validation_errors([template], version)
    referenced = set()
    for name in KUSTOMIZATIONS:
        for doc in render(name):
            spec = pod_spec(doc)
            for c in containers(spec) if spec else []:
                for item in c.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == template["metadata"]["name"]
                        assert ref.get("optional") is True, f"{item['name']}: make it optional"
                        referenced.add(ref["key"])
    assert referenced <= set(template["stringData"]), referenced - set(template["stringData"])


def test_every_overlay_has_the_whole_stack(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for needed in [
        ("Namespace", "llmops"),
        ("Deployment", "llmops-gateway"),
        ("Service", "llmops-gateway"),
        ("HorizontalPodAutoscaler", "llmops-gateway"),
        ("PodDisruptionBudget", "llmops-gateway"),
        ("StatefulSet", "qdrant"),
        ("Service", "qdrant"),
        ("Service", "qdrant-headless"),
        ("NetworkPolicy", "default-deny-ingress"),
        ("Deployment", "vllm-chat"),
        ("Service", "vllm-chat"),
        ("PersistentVolumeClaim", "vllm-models-chat"),
    ]:
        assert needed in kinds, needed
    assert any(d["kind"] == "ConfigMap" and _is_gateway_config(d) for d in docs)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "llmops", doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "llmops"


def test_every_container_has_requests_and_limits(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in docs:
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in res.get(kind, {}), f"{doc['metadata']['name']}/{c['name']}"
            gpus = res.get("requests", {}).get("nvidia.com/gpu")
            assert gpus == res.get("limits", {}).get("nvidia.com/gpu"), "GPU request != limit"


def test_every_long_running_container_has_probes(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        # Init containers run to completion, except native sidecars (restartPolicy: Always).
        for c in spec.get("initContainers", []):
            assert c.get("restartPolicy") == "Always", f"{c['name']}: plain init container"
        for c in containers(spec):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, f"{doc['metadata']['name']}/{c['name']} lacks {probe}"


def test_pods_meet_pod_security_restricted(rendered: tuple[str, list[Doc]]) -> None:
    """The namespace enforces "restricted"; check it here so a violation fails in CI."""
    _, docs = rendered
    namespace = one(docs, "Namespace", "llmops")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        name = doc["metadata"]["name"]
        pod_ctx = spec.get("securityContext", {})
        assert pod_ctx.get("runAsNonRoot") is True, name
        assert pod_ctx.get("runAsUser", 0) != 0, name
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, f"{name}: hostPath volume {volume['name']}"
        for c in containers(spec):
            ctx = c.get("securityContext", {})
            assert ctx.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}"
            assert not ctx.get("privileged"), f"{name}/{c['name']}"
            assert ctx.get("runAsUser", 1) != 0, f"{name}/{c['name']}"


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/name:tag@sha256:...`` -> (name, tag, digest); a port is not a tag."""
    reference, _, digest = image.partition("@")
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, None, digest or None
    return name, tag, digest or None


def test_images_are_pinned(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in docs:
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            _, tag, digest = split_image(c["image"])
            where = f"{doc['metadata']['name']}/{c['name']}: {c['image']}"
            # An image left as a bare kustomize name ("vllm-engine") was never resolved.
            assert tag or digest, f"{where} has neither tag nor digest"
            assert tag != "latest", where
            assert digest is None or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), where
            assert c.get("imagePullPolicy") != "Always" or digest, where


def test_split_image() -> None:
    assert split_image("localhost:5000/a/b:1.2") == ("localhost:5000/a/b", "1.2", None)
    assert split_image("localhost:5000/a/b") == ("localhost:5000/a/b", None, None)
    assert split_image("vllm-engine") == ("vllm-engine", None, None)
    assert split_image("q:v1@sha256:" + "a" * 64) == ("q", "v1", "sha256:" + "a" * 64)


def _is_gateway_config(doc: Doc) -> bool:
    return doc["metadata"]["name"].startswith("llmops-gateway-config") and (
        GATEWAY_CONFIG_KEY in doc.get("data", {})
    )


def _gateway_config(docs: list[Doc], tmp_path: Path) -> GatewayConfig:
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and _is_gateway_config(d)]
    path = tmp_path / GATEWAY_CONFIG_KEY
    path.write_text(configmap["data"][GATEWAY_CONFIG_KEY])
    return load_config(path)


def test_gateway_config_loads_and_is_mounted(
    rendered: tuple[str, list[Doc]], tmp_path: Path
) -> None:
    _, docs = rendered
    config = _gateway_config(docs, tmp_path)
    assert config.models, "no models configured"
    assert config.server.host == "0.0.0.0"
    deployment = one(docs, "Deployment", "llmops-gateway")
    spec = pod_spec(deployment)
    assert spec is not None
    (gateway,) = [c for c in spec["containers"] if c["name"] == "gateway"]
    args = gateway["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert int(args[args.index("--port") + 1]) == config.server.port
    assert gateway["ports"][0]["containerPort"] == config.server.port
    (mount,) = [m for m in gateway["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    configmaps = {d["metadata"]["name"] for d in docs if _is_gateway_config(d)}
    assert volume["configMap"]["name"] in configmaps
    assert config_path.name == GATEWAY_CONFIG_KEY


def test_gateway_config_points_at_rendered_services(
    rendered: tuple[str, list[Doc]], tmp_path: Path
) -> None:
    """Each upstream is a Service of a vLLM Deployment that serves the name the gateway asks."""
    _, docs = rendered
    config = _gateway_config(docs, tmp_path)
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    names = {n: m.name for m in config.models for n in (m.name, *m.aliases)}
    for model in config.models:
        if model.variants is not None:
            # An alias over other models (a canary): those have the upstreams, checked here.
            for v in model.variants:
                target = next(m for m in config.models if m.name == names[v.model])
                assert target.upstreams, f"{model.name}: variant {v.model} has no upstreams"
            continue
        assert model.upstreams, f"{model.name}: in Kubernetes every model has upstreams"
        for upstream in model.upstreams:
            url = urlparse(upstream.url)
            assert url.hostname in services, upstream.url
            service = services[url.hostname]
            assert url.port in [p["port"] for p in service["spec"]["ports"]], upstream.url
            selector = service["spec"]["selector"]
            (deployment,) = [
                d
                for d in deployments.values()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            spec = pod_spec(deployment)
            assert spec is not None
            served = env_value(spec["containers"][0], "SERVED_MODEL_NAME")
            assert served == model.upstream_name, (model.name, served)
    assert config.retrieval is not None
    retrieval: dict[str, Any] = config.retrieval.model_dump(mode="json")
    store_url = urlparse(retrieval["store"]["url"])
    assert store_url.hostname in services and store_url.port == 6333
    embedder = retrieval.get("embedder", {})
    if embedder.get("kind") == "openai":
        host = urlparse(embedder["base_url"]).hostname
        assert host in services, embedder["base_url"]
        assert embedder["model"] in {n for m in config.models for n in (m.name, *m.aliases)}


def test_gateway_retrieval_block_matches_the_retrieval_config(
    rendered: tuple[str, list[Doc]], tmp_path: Path
) -> None:
    """The gateway's ``retrieval`` section is the retrieval package's own config model."""
    retrieval = require_module("retrieval", "pip install -e '.[retrieval]'")
    model = retrieval.RetrievalConfig
    _, docs = rendered
    config = _gateway_config(docs, tmp_path)
    assert isinstance(config.retrieval, model)


def test_prompts_reach_the_gateway(rendered: tuple[str, list[Doc]], tmp_path: Path) -> None:
    """Either git-sync fills the repo the config names, or the config reads the baked folder."""
    _, docs = rendered
    config = _gateway_config(docs, tmp_path)
    assert config.prompts is not None and config.prompts.enabled
    spec = pod_spec(one(docs, "Deployment", "llmops-gateway"))
    assert spec is not None
    sidecars = [c for c in spec.get("initContainers", []) if c["name"] == "git-sync"]
    if sidecars:
        (sync,) = sidecars
        root = env_value(sync, "GITSYNC_ROOT")
        link = env_value(sync, "GITSYNC_LINK")
        assert config.prompts.repo == f"{root}/{link}"
        assert env_value(sync, "GITSYNC_DEPTH") == "0", "the registry needs the full history"
        assert config.prompts.ref == "HEAD"
        (gateway,) = spec["containers"]
        mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
        assert mounts[root]["readOnly"] is True
        assert root in {m["mountPath"] for m in sync["volumeMounts"]}
    else:
        # Baked into the image by deploy/images/gateway.Dockerfile.
        assert config.prompts.repo == "/srv/llmops" and config.prompts.ref is None


def test_network_policies_let_only_the_gateway_reach_models_and_qdrant(
    rendered: tuple[str, list[Doc]],
) -> None:
    _, docs = rendered
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    deny = policies["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny
    gateway = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "llmops-gateway"}}}
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    allowed = {
        "vllm": [gateway, monitoring],
        "qdrant": [
            gateway,
            monitoring,
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "qdrant"}}},
            {"podSelector": {"matchLabels": {"llmops.dev/qdrant-client": "true"}}},
        ],
    }
    for target, peers in allowed.items():
        selecting = [
            p
            for p in policies.values()
            if p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == target
        ]
        assert selecting, f"no policy selects {target}"
        for policy in selecting:
            for rule in policy["ingress"]:
                assert rule.get("from"), f"{target}: a rule open to every source"
                for peer in rule["from"]:
                    assert peer in peers, f"{target}: unexpected peer {peer}"
                if monitoring in rule["from"]:
                    assert [p["port"] for p in rule["ports"]] in ([8000], [6333]), "metrics only"
    # Every workload's pods are selected by some policy besides the default deny.
    for doc in docs:
        if pod_spec(doc) is None:
            continue
        name = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        assert any(
            p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == name
            for p in policies.values()
        ), name


def test_vllm_deployments(rendered: tuple[str, list[Doc]]) -> None:
    kustomization, docs = rendered
    claims = {d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim")}
    engines = [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/name"] == "vllm"
    ]
    assert engines
    for deployment in engines:
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        spec = template["spec"]
        (c,) = spec["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] == "/health", f"{name}: {probe}"
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "8000"
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm["medium"] == "Memory" and shm["sizeLimit"]
        claim = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims, f"{name}: PVC {claim} not rendered"
        assert (env_value(c, "HF_HOME") or "").startswith("/models/")
        model_label = template["metadata"]["labels"]["llmops.dev/model"]
        assert deployment["spec"]["selector"]["matchLabels"]["llmops.dev/model"] == model_label
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        if kustomization == "overlays/cpu-dev":
            assert gpus is None and "nodeSelector" not in spec and "tolerations" not in spec
            assert env_value(c, "VLLM_CPU_KVCACHE_SPACE")
            assert "cpu" in c["image"] and "--enforce-eager" in c["args"]
            assert "--no-enable-chunked-prefill" in c["args"]  # as the local engine runs it
        else:
            tp = int(env_value(c, "TENSOR_PARALLEL_SIZE") or "0")
            assert gpus == tp, f"{name}: {gpus} GPUs for tensor parallel {tp}"
            assert "--tensor-parallel-size" in c["args"]
            assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
                spec["tolerations"]
            )
            assert c["image"].startswith("docker.io/vllm/vllm-openai:v")


# vLLM's tool parser per model family (its chat template decides how tool calls are written).
TOOL_PARSERS = {"Llama-3": "llama3_json", "SmolLM2": "hermes", "Qwen2.5": "hermes"}


def test_chat_engines_parse_tool_calls(rendered: tuple[str, list[Doc]]) -> None:
    """Chat engines run with vLLM's tool parser for their model (tools, Responses API, Agents
    SDK); the embedding engine runs without one."""
    _, docs = rendered
    for d in by_kind(docs, "Deployment"):
        if d["metadata"]["labels"].get("app.kubernetes.io/name") != "vllm":
            continue
        (c,) = d["spec"]["template"]["spec"]["containers"]
        name, args, model = d["metadata"]["name"], c["args"], env_value(c, "MODEL_ID") or ""
        if name.endswith("-embed"):
            assert "--tool-call-parser" not in args, name
            continue
        assert "--enable-auto-tool-choice" in args, name
        parser = args[args.index("--tool-call-parser") + 1]
        family = next(f for f in TOOL_PARSERS if f in model)
        assert parser == TOOL_PARSERS[family], (name, model, parser)


def test_gpu_overlay_is_a_tensor_parallel_h100_example() -> None:
    docs = render("overlays/gpu")
    chat = one(docs, "Deployment", "vllm-chat")
    spec = pod_spec(chat)
    assert spec is not None
    assert spec["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert env_value(spec["containers"][0], "TENSOR_PARALLEL_SIZE") == "2"
    assert chat["spec"]["replicas"] == 2
    engines = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].startswith("vllm-")]
    assert len(engines) >= 2, "the gpu example serves more than one model"


def test_qdrant_runs_as_a_cluster(rendered: tuple[str, list[Doc]]) -> None:
    kustomization, docs = rendered
    statefulset = one(docs, "StatefulSet", "qdrant")
    spec = pod_spec(statefulset)
    assert spec is not None
    (c,) = spec["containers"]
    assert env_value(c, "QDRANT__CLUSTER__ENABLED") == "true"
    assert env_value(c, "QDRANT__CLUSTER__P2P__PORT") == "6335"
    script = "\n".join(c["args"])
    assert "--bootstrap" in script and "--uri" in script
    assert statefulset["spec"]["serviceName"] == "qdrant-headless"
    headless = one(docs, "Service", "qdrant-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert 6335 in [p["port"] for p in headless["ports"]]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] in [m["name"] for m in c["volumeMounts"]]
    replicas = statefulset["spec"]["replicas"]
    assert replicas == (1 if kustomization == "overlays/cpu-dev" else 3)


def test_gateway_scales_and_survives_disruptions(rendered: tuple[str, list[Doc]]) -> None:
    kustomization, docs = rendered
    hpa = one(docs, "HorizontalPodAutoscaler", "llmops-gateway")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llmops-gateway",
    }
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    deployment = one(docs, "Deployment", "llmops-gateway")
    assert deployment["spec"]["replicas"] == hpa["minReplicas"]
    pdb = one(docs, "PodDisruptionBudget", "llmops-gateway")["spec"]
    # A PDB must never forbid every eviction (that blocks node drains for good).
    if "minAvailable" in pdb:
        assert pdb["minAvailable"] < hpa["minReplicas"], kustomization
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- Canary: model variants behind one alias --------------------------------------------------

CANARY_ALIAS = "chat"


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (``matchLabels`` and ``matchExpressions``) against labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _admits(policies: list[Doc], source: dict[str, str], target: Doc, port: int) -> bool:
    """Whether the NetworkPolicies let a pod labelled ``source`` (same namespace) reach the
    pods of workload ``target`` on container port ``port``: some policy selecting the target
    has an ingress rule with a same-namespace pod peer matching the source, on that port."""
    spec = pod_spec(target)
    assert spec is not None
    labels = target["spec"]["template"]["metadata"]["labels"]
    names = {p["containerPort"]: p.get("name") for c in spec["containers"] for p in c["ports"]}
    for policy in policies:
        p = policy["spec"]
        if "Ingress" not in p.get("policyTypes", ["Ingress"]) or not _selects(
            p["podSelector"], labels
        ):
            continue
        for rule in p.get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(q.get("port") in (port, names.get(port)) for q in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "namespaceSelector" in peer or "ipBlock" in peer:
                    continue
                if _selects(peer.get("podSelector", {}), source):
                    return True
    return False


def _workload_behind(docs: list[Doc], url: str) -> tuple[Doc, int]:
    """The one workload whose pods the Service of ``url`` selects, and the container port the
    URL's port reaches."""
    parsed = urlparse(url)
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    assert parsed.hostname in services, f"{url}: no Service {parsed.hostname} rendered"
    service = services[parsed.hostname]["spec"]
    (port,) = [p for p in service["ports"] if p["port"] == parsed.port]
    selector = {"matchLabels": service["selector"]}
    workloads = [
        d
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        and _selects(selector, d["spec"]["template"]["metadata"]["labels"])
    ]
    selected = [w["metadata"]["name"] for w in workloads]
    assert len(workloads) == 1, f"{url}: the Service selects {selected}"
    (workload,) = workloads
    spec = pod_spec(workload)
    assert spec is not None
    target = port.get("targetPort", port["port"])
    for c in spec["containers"]:
        for p in c.get("ports", []):
            if target in (p["containerPort"], p.get("name")):
                return workload, p["containerPort"]
    raise AssertionError(f"{url}: targetPort {target} is no container port")


def _gateway_labels(docs: list[Doc]) -> dict[str, str]:
    labels: dict[str, str] = one(docs, "Deployment", "llmops-gateway")["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def _canary(docs: list[Doc], tmp_path: Path) -> tuple[GatewayConfig, list[tuple[str, float, Doc]]]:
    """The gateway config and, per variant of the chat alias: model, weight, vLLM Deployment."""
    config = _gateway_config(docs, tmp_path)
    names = {n: m.name for m in config.models for n in (m.name, *m.aliases)}
    alias = next(m for m in config.models if m.name == names[CANARY_ALIAS])
    assert alias.variants, f"{CANARY_ALIAS} has no variants"
    found = []
    for v in alias.variants:
        model = next(m for m in config.models if m.name == names[v.model])
        (upstream,) = model.upstreams
        deployment, _ = _workload_behind(docs, upstream.url)
        found.append((model.name, v.weight, deployment))
    return config, found


def test_gpu_overlay_renders_a_canary_of_the_chat_model(tmp_path: Path) -> None:
    """Two vLLM Deployments, one per version, behind the alias clients call, with weights."""
    docs = render("overlays/gpu")
    config, variants = _canary(docs, tmp_path)
    assert len(variants) >= 2, variants
    weights = [w for _, w, _ in variants]
    assert all(0 <= w <= 100 for w in weights) and sum(weights) > 0, weights
    deployments = [d for _, _, d in variants]
    assert len({d["metadata"]["name"] for d in deployments}) == len(deployments), "one per version"
    alias = next(m for m in config.models if m.name == CANARY_ALIAS)
    assert alias.baseline_variant in {m for m, _, _ in variants}
    assert alias.guard is not None and alias.guard.enabled, "the canary rolls back by itself"
    versions = set()
    for model, _, deployment in variants:
        assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "vllm", model
        spec = pod_spec(deployment)
        assert spec is not None
        (c,) = spec["containers"]
        served = env_value(c, "SERVED_MODEL_NAME")
        expected = next(m for m in config.models if m.name == model).upstream_name
        assert served == expected, (model, served)
        versions.add((env_value(c, "MODEL_ID"), c["image"], tuple(c["args"])))
        assert deployment["spec"]["replicas"] >= 1
    assert len(versions) == len(variants), "the variants run the same model: not a canary"
    # The baseline keeps the production replicas; the canary is an addition to it.
    assert one(docs, "Deployment", "vllm-chat") in deployments


def test_network_policies_admit_the_gateway_to_every_variant(tmp_path: Path) -> None:
    docs = render("overlays/gpu")
    _, variants = _canary(docs, tmp_path)
    policies = by_kind(docs, "NetworkPolicy")
    gateway = _gateway_labels(docs)
    config = _gateway_config(docs, tmp_path)
    for model, _, deployment in variants:
        (upstream,) = next(m for m in config.models if m.name == model).upstreams
        _, port = _workload_behind(docs, upstream.url)
        assert _admits(policies, gateway, deployment, port), f"the gateway cannot reach {model}"
        # Guard for the check itself: another pod of the namespace is still refused.
        assert not _admits(policies, {"app.kubernetes.io/name": "qdrant"}, deployment, port)
        assert not _admits(policies, gateway, deployment, port + 1)


def test_admits_follows_network_policy_semantics() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 80}]}
    target = {
        "kind": "Deployment",
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x", "tier": "t"}},
                "spec": {"containers": [container]},
            }
        },
    }

    def policy(select: Doc, ingress: list[Doc]) -> Doc:
        return {"spec": {"podSelector": select, "policyTypes": ["Ingress"], "ingress": ingress}}

    gw = {"app": "gw"}
    from_gw = [{"from": [{"podSelector": {"matchLabels": gw}}], "ports": [{"port": "http"}]}]
    assert _admits([policy({"matchLabels": {"app": "x"}}, from_gw)], gw, target, 80)
    assert not _admits([policy({"matchLabels": {"app": "y"}}, from_gw)], gw, target, 80)
    assert not _admits([policy({"matchLabels": {"app": "x"}}, from_gw)], {"app": "z"}, target, 80)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["t", "u"]}]}
    assert _admits([policy(expr, from_gw)], gw, target, 80)
    other_ns = [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": gw}}]}]
    assert not _admits([policy({}, other_ns)], gw, target, 80)
    assert not _admits([], gw, target, 80)


def test_gateway_replicas_share_variant_state(
    rendered: tuple[str, list[Doc]], tmp_path: Path
) -> None:
    """With variants and more than one gateway pod, weights and rollbacks live in a Redis the
    gateways reach (else each pod would route, promote and roll back on its own)."""
    _, docs = rendered
    config = _gateway_config(docs, tmp_path)
    if not any(m.variants for m in config.models):
        return
    hpa = one(docs, "HorizontalPodAutoscaler", "llmops-gateway")["spec"]
    assert hpa["maxReplicas"] > 1
    state = config.variants.state
    if state == "auto":
        state = "redis" if config.limits.backend == "redis" else "file"
    assert state == "redis", "several gateway replicas need variants.state: redis"
    redis, port = _workload_behind(docs, config.limits.redis.url)
    assert _admits(by_kind(docs, "NetworkPolicy"), _gateway_labels(docs), redis, port)
    # The config is a read-only ConfigMap mount: nothing to write weight changes back into.
    assert config.variants.write_back is False
