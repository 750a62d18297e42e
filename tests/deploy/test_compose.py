"""The single-host compose file: valid against the Compose specification, and sound.

Schema: the Compose specification JSON schema as shipped by Debian's ``docker-compose`` package
(``/usr/lib/python3/dist-packages/compose/config/compose_spec.json``, 2021; no top-level
``name``, so the project name lives in ``.env``), or the file named by ``COMPOSE_SPEC_SCHEMA``.
The same package's ``docker-compose config`` also interpolates and resolves the file; a
Compose v2 CLI (``docker compose``), where present, checks it against the current schema.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway._config import load_config
from tests.deploy._support import (
    COMPOSE_DIR,
    find_tool,
    require_file,
    require_module,
    require_tool,
    run,
)

COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
DEBIAN_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _schema() -> dict[str, Any]:
    path = Path(os.environ.get("COMPOSE_SPEC_SCHEMA", DEBIAN_SCHEMA))
    require_file(path, "the Compose spec schema: apt-get install docker-compose")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def test_compose_file_matches_the_compose_spec_schema() -> None:
    schema = _schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_check_catches_mistakes() -> None:
    """Guard for the test above: a misspelt service key is an error."""
    schema = _schema()
    broken = _compose()
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


@pytest.mark.parametrize(
    ("profile", "env_file"),
    [((), None), (("--profile", "langfuse"), ".env.example")],
    ids=["defaults", "langfuse-with-env-example"],
)
def test_compose_cli_accepts_the_file(profile: tuple[str, ...], env_file: str | None) -> None:
    """``config -q`` with the Compose CLI: interpolation, references, the spec schema."""
    docker = find_tool("docker")
    v2 = docker is not None and run([docker, "compose", "version"]).returncode == 0
    if v2:
        assert docker is not None
        cmd = [docker, "compose"]
    else:
        cmd = [require_tool("docker-compose", "apt-get install docker-compose")]
    if env_file:
        cmd += ["--env-file", str(COMPOSE_DIR / env_file)]
    result = run([*cmd, "-f", str(COMPOSE_FILE), *profile, "config", "-q"], cwd=COMPOSE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_health_check_and_a_pinned_image() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service.get("restart") == "unless-stopped", name
        image = service["image"]
        _, colon, tag = image.rpartition(":")
        assert colon and tag and tag != "latest" and "/" not in tag, f"{name}: {image}"


def test_only_the_gateway_and_langfuse_ui_publish_ports() -> None:
    services = _compose()["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway", "langfuse-web"}
    for name in published:
        for port in services[name]["ports"]:
            # Loopback unless the operator says otherwise.
            assert re.match(r"^\$\{\w+_BIND:-127\.0\.0\.1\}:", port), port


def test_gateway_waits_for_healthy_backends_and_reads_its_config(tmp_path: Path) -> None:
    services = _compose()["services"]
    gateway = services["gateway"]
    for dependency in ("vllm", "qdrant"):
        assert gateway["depends_on"][dependency]["condition"] == "service_healthy"
    assert "./gateway.yaml:/etc/llmops/gateway.yaml:ro" in gateway["volumes"]
    assert gateway["build"]["dockerfile"] == "deploy/images/gateway.Dockerfile"
    config = load_config(COMPOSE_DIR / "gateway.yaml")
    assert config.server.port == int(gateway["command"][gateway["command"].index("--port") + 1])
    hosts = {m.name: [u.url for u in m.upstreams] for m in config.models}
    for urls in hosts.values():
        for url in urls:
            host = url.split("//")[1].split(":")[0]
            assert host in services and host != "gateway", url
    assert config.prompts is not None
    mounted = [re.sub(r":(ro|rw)$", "", v).rsplit(":", 1)[1] for v in gateway["volumes"]]
    assert config.prompts.repo in mounted
    retrieval = require_module("retrieval", "pip install -e '.[retrieval]'")
    assert isinstance(config.retrieval, retrieval.RetrievalConfig)


def test_engines_get_the_gpu_shared_memory_and_the_model_volume() -> None:
    compose = _compose()
    for name in ("vllm", "vllm-embed"):
        service = compose["services"][name]
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert service["shm_size"]
        assert "models:/models" in service["volumes"]
        assert not service.get("ports"), "engines stay on the compose network"
        assert "/health" in " ".join(service["healthcheck"]["test"])
    assert {"models", "qdrant"} <= set(compose["volumes"])
    assert "qdrant:/qdrant/storage" in compose["services"]["qdrant"]["volumes"]


def test_langfuse_is_optional() -> None:
    services = _compose()["services"]
    langfuse = {n for n in services if n.startswith("langfuse")}
    assert langfuse
    for name in langfuse:
        assert services[name]["profiles"] == ["langfuse"], name
    for name in set(services) - langfuse:
        assert "profiles" not in services[name], name
    env_example = (COMPOSE_DIR / ".env.example").read_text()
    for key in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "COMPOSE_PROJECT_NAME"):
        assert re.search(rf"^{key}=", env_example, re.M), key


def test_gateway_environment_overrides_name_real_config_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``LLMOPS_*`` variables in the compose file must match fields (the config forbids extras)."""
    environment = _compose()["services"]["gateway"]["environment"]
    overrides = {k: v for k, v in environment.items() if k.startswith("LLMOPS_")}
    assert overrides
    for key, value in overrides.items():
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
        monkeypatch.setenv(key, default.group(1) if default else value)
    load_config(COMPOSE_DIR / "gateway.yaml")
    monkeypatch.setenv("LLMOPS_OBSERVABILITY__NO_SUCH_FIELD", "1")
    with pytest.raises(ValueError):
        load_config(COMPOSE_DIR / "gateway.yaml")


def test_chat_engine_parses_tool_calls() -> None:
    """The chat engine runs with a tool parser (tools, the Responses API, the Agents SDK); the
    embedding engine without."""
    services = _compose()["services"]
    chat, embed = services["vllm"]["command"], services["vllm-embed"]["command"]
    assert "--enable-auto-tool-choice" in chat
    assert chat[chat.index("--tool-call-parser") + 1] == "${CHAT_TOOL_CALL_PARSER:-llama3_json}"
    assert "--tool-call-parser" not in embed
