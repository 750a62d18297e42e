"""Gateway configuration: one YAML file validated by pydantic, overridable by environment.

Environment variables win over the file: ``LLMOPS_SERVER__PORT=9000`` or
``LLMOPS_AUTH__ENABLED=false`` (prefix ``LLMOPS_``, nested fields joined by ``__``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from common import server_root
from engine import EngineSpec
from gateway._limits_config import LimitsConfig, LimitSpec
from gateway._routing_config import RoutingConfig
from gateway._spend_config import InfraCost, SpendConfig, TokenPrice
from gateway._variants_config import GuardConfig, VariantConfig, VariantsConfig
from observability import ObservabilityConfig
from retrieval import EmbedderConfig, RetrievalConfig

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpstreamConfig(_Strict):
    """One vLLM replica (its OpenAI server root, with or without a trailing ``/v1``)."""

    url: str
    weight: float = Field(1.0, gt=0)
    api_key: str | None = Field(None, description="Bearer key the replica itself requires, if any.")

    @field_validator("url")
    @classmethod
    def _normalise(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("upstream url must start with http:// or https://")
        return server_root(v)


class ModelConfig(_Strict):
    """A model clients can name, served by replicas, by a local engine the gateway starts, or
    (with ``variants``) by other models of this config in weighted shares."""

    name: str = Field(min_length=1)
    served_name: str | None = Field(None, description="Name the replicas know; defaults to name.")
    aliases: list[str] = Field(default_factory=list)
    kind: Literal["chat", "embedding"] = "chat"
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    engine: EngineSpec | None = None
    embedder: EmbedderConfig | None = Field(
        None, description="kind: embedding only: served in-process (sentence-transformers)."
    )
    owned_by: str = "llmops"
    variants: list[VariantConfig] | None = Field(
        None, description="Serve this name from these models, split by weight (canary, A/B)."
    )
    baseline: str | None = Field(
        None, description="variants: the one the guard compares with; null = the first."
    )
    guard: GuardConfig | None = Field(None, description="variants: automatic rollback.")
    cold_start_timeout_s: float | None = Field(
        None, gt=0, le=3600,
        description="With no ready replica, hold requests this long while one comes up "
        "(scale from zero, or an engine started on demand) instead of 503 at once.",
    )  # fmt: skip
    start: Literal["at_startup", "on_first_request"] = Field(
        "at_startup", description="engine only: start the local engine with the gateway or "
        "when the first request needs it (then cold_start_timeout_s is required).",
    )  # fmt: skip
    routing: RoutingConfig = Field(
        default_factory=RoutingConfig, description="How replicas are chosen (docs/routing.md)."
    )
    price: TokenPrice | None = Field(None, description="Token list price (remote upstreams).")
    cost: InfraCost | None = Field(None, description="Cost per replica-hour (own GPUs).")

    @model_validator(mode="after")
    def _needs_a_backend(self) -> ModelConfig:
        self._check_pricing()
        if self.variants is not None:
            return self._check_variants()
        if self.baseline is not None or self.guard is not None:
            raise ValueError(f"model {self.name!r}: 'baseline' and 'guard' need 'variants'")
        if self.start == "on_first_request":
            if self.engine is None or self.upstreams:
                raise ValueError(
                    f"model {self.name!r}: start: on_first_request starts a local 'engine' "
                    "(a model without upstreams)"
                )
            if self.cold_start_timeout_s is None:
                raise ValueError(
                    f"model {self.name!r}: start: on_first_request needs cold_start_timeout_s "
                    "(how long the first request may wait for the engine; a CPU engine takes "
                    "about a minute)"
                )
        if not self.upstreams and self.engine is None and self.embedder is None:
            raise ValueError(
                f"model {self.name!r} needs 'upstreams', an 'engine' to start, an 'embedder', "
                "or 'variants'"
            )
        if self.embedder is not None and (self.kind != "embedding" or self.upstreams):
            raise ValueError(
                f"model {self.name!r}: 'embedder' serves a kind: embedding model in-process, "
                "without upstreams"
            )
        return self

    def _check_pricing(self) -> None:
        if self.price is not None and self.cost is not None:
            raise ValueError(f"model {self.name!r}: give 'price' or 'cost', not both")
        if self.variants is not None and (self.price is not None or self.cost is not None):
            raise ValueError(
                f"model {self.name!r}: an alias with 'variants' is priced by its variants' "
                "models; move 'price' / 'cost' there"
            )
        if self.cost is not None and not self.upstreams and self.engine is None:
            raise ValueError(
                f"model {self.name!r}: 'cost' is per replica; it needs 'upstreams' or an "
                "'engine' (give an in-process model a 'price')"
            )

    def _check_variants(self) -> ModelConfig:
        assert self.variants is not None
        if {"routing", "cold_start_timeout_s"} & self.model_fields_set:
            raise ValueError(
                f"model {self.name!r}: an alias with 'variants' has no replicas of its own; set "
                "'routing' and 'cold_start_timeout_s' on its variants' models"
            )
        if self.upstreams or self.engine is not None or self.embedder is not None:
            raise ValueError(
                f"model {self.name!r}: 'variants' route to other models; it takes no "
                "'upstreams', 'engine' or 'embedder' of its own"
            )
        models = [v.model for v in self.variants]
        if len(models) < 1:
            raise ValueError(f"model {self.name!r}: 'variants' lists no model")
        if len(set(models)) != len(models):
            raise ValueError(f"model {self.name!r}: a model is listed twice in 'variants'")
        if not sum(v.weight for v in self.variants) > 0:
            raise ValueError(f"model {self.name!r}: the variants' weights sum to 0")
        if self.baseline is not None and self.baseline not in models:
            raise ValueError(
                f"model {self.name!r}: baseline {self.baseline!r} is not one of its variants"
            )
        return self

    @property
    def upstream_name(self) -> str:
        return self.served_name or self.name

    @property
    def baseline_variant(self) -> str | None:
        if not self.variants:
            return None
        return self.baseline or self.variants[0].model


class ApiKeyConfig(_Strict):
    """A client key, stored only as its SHA-256 hex digest (``llmops keys hash`` prints one)."""

    name: str
    sha256: str
    models: list[str] | None = Field(None, description="Models (or aliases) allowed; null = all.")
    team: str | None = Field(None, description="Team whose shared limits (limits.teams) apply.")
    limits: LimitSpec | None = Field(None, description="This key's limits; null = limits.default.")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        return _check_digest(v)


def _check_digest(v: str) -> str:
    v = v.strip().lower()
    if not _SHA256_HEX.match(v):
        raise ValueError("sha256 must be 64 lowercase hex characters")
    return v


class AuthConfig(_Strict):
    enabled: bool = True
    keys: list[ApiKeyConfig] = Field(default_factory=list)
    admin_sha256: str | None = Field(
        None, description="Digest of the admin key (/admin routes); null = admin routes off."
    )

    @field_validator("admin_sha256")
    @classmethod
    def _admin_hex(cls, v: str | None) -> str | None:
        return None if v is None else _check_digest(v)

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("auth.keys: key names must be unique")
        digests = [k.sha256 for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("auth.keys: the same key digest is listed twice")
        if self.admin_sha256 is not None and self.admin_sha256 in digests:
            raise ValueError("auth.admin_sha256 must not also be a client key")
        return self


class CorsConfig(_Strict):
    """Browser cross-origin access; off unless origins are listed."""

    allow_origins: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id"]
    )
    allow_credentials: bool = False
    max_age_s: int = Field(600, ge=0)


class HealthConfig(_Strict):
    """Active checks on each replica's ``/health`` plus passive ejection after failures."""

    interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(2.0, gt=0)
    failure_threshold: int = Field(3, ge=1)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    request_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest file `POST /v1/files` accepts."
    )
    max_connections_per_replica: int = Field(0, ge=0, description="0 = unlimited")
    affinity: bool = Field(True, description="Same user / x-session-id sticks to a replica.")
    # Streams: the first chunk must come within first_byte_timeout_s of sending the request,
    # and each later chunk within chunk_timeout_s of the previous one; otherwise the client
    # gets an OpenAI-style error event and the upstream request is aborted.
    first_byte_timeout_s: float = Field(120.0, gt=0)
    chunk_timeout_s: float = Field(60.0, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="Request line + headers.")
    cors: CorsConfig = Field(default_factory=CorsConfig)


class PromptsConfig(_Strict):
    """Where the prompt registry reads templates (see docs/prompts.md)."""

    enabled: bool = True
    repo: str = "."
    dir: str = "prompts"
    ref: str | None = Field("HEAD", description="git ref served; null = read the working tree")
    reload_interval_s: float = Field(5.0, ge=0, description="0 = load once, never poll")


class GatewayConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLMOPS_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    prompts: PromptsConfig | None = None
    retrieval: RetrievalConfig | None = Field(
        None, description="Qdrant store and embedder for RAG prompts and vector store search."
    )
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    variants: VariantsConfig = Field(default_factory=VariantsConfig)
    spend: SpendConfig = Field(default_factory=SpendConfig)
    # The file this config came from (set by load_config; admin reload re-reads it).
    _source: Path | None = PrivateAttr(None)

    @property
    def source_path(self) -> Path | None:
        return self._source

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the YAML file (passed in as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        seen: dict[str, str] = {}
        for m in self.models:
            for n in (m.name, *m.aliases):
                if n in seen:
                    raise ValueError(f"model name or alias {n!r} used twice ({seen[n]}, {m.name})")
                seen[n] = m.name
        by_name = {m.name: m for m in self.models}
        for m in self.models:
            for v in m.variants or ():
                target = by_name.get(seen.get(v.model, ""))
                if target is None:
                    raise ValueError(f"model {m.name!r}: variant {v.model!r} is not a model here")
                if target.variants is not None:
                    raise ValueError(f"model {m.name!r}: variant {v.model!r} has variants itself")
                if target.kind != m.kind:
                    raise ValueError(
                        f"model {m.name!r} ({m.kind}): variant {v.model!r} is a {target.kind} model"
                    )
        for k in self.auth.keys:
            for n in k.models or ():
                if n not in seen:
                    raise ValueError(f"key {k.name!r} allows unknown model {n!r}")
        for name in self.limits.shedding.models:
            if name not in seen:
                raise ValueError(f"limits.shedding.models names unknown model {name!r}")
        for name in self.spend.prices:
            target = by_name.get(name)
            if target is None:
                raise ValueError(f"spend.prices.{name}: {name!r} is not a model name here")
            if target.variants is not None:
                raise ValueError(f"spend.prices.{name}: {name!r} is an alias with variants; "
                                 "price its variants' models")  # fmt: skip
            if target.price is not None or target.cost is not None:
                raise ValueError(f"spend.prices.{name}: model {name!r} has its own price or cost")
        return self

    def pricing(self) -> dict[str, TokenPrice | InfraCost]:
        """Model name -> its price or cost (the model entry's, or the price table's)."""
        out: dict[str, TokenPrice | InfraCost] = dict(self.spend.prices)
        for m in self.models:
            if m.price is not None or m.cost is not None:
                out[m.name] = m.price or m.cost  # type: ignore[assignment]
        return out


def hash_key(key: str) -> str:
    """The digest stored in the config for a client key."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_config(path: str | Path | None) -> GatewayConfig:
    """Read and validate a YAML config; ``None`` gives defaults plus the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
        data = raw
    cfg = GatewayConfig(**data)
    if path is not None:
        cfg._source = Path(path).resolve()
    return cfg
