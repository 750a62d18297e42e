"""Resolve OpenAI's ``prompt`` object in chat/completions/responses bodies into messages.

The hot path: a body without ``prompt`` returns at once; with one, the cost is a few dict reads,
variable checks and the rendering of templates compiled when the registry loaded. Retrieval, when
the template asks for it, goes through the ``retrieve`` callable the gateway injects.

Body shape (sent by the SDK through ``extra_body``)::

    {"model": ..., "messages": [...],
     "prompt": {"id": "rag-answer", "version": "canary", "variables": {"question": "..."}}}

The Responses API takes the same object as its native ``prompt`` parameter (the SDK's
``responses.create(prompt=...)``); the rendered messages become the ``input``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from prompts import (
    PromptError,
    PromptTemplate,
    PromptVersion,
    RegistryReloader,
    RenderedPrompt,
)

Retrieve = Callable[[str, str, int, dict[str, Any] | None], Awaitable[list[dict[str, Any]]]]
Endpoint = Literal["chat", "completions", "responses"]

_PROMPT_KEYS = frozenset({"id", "version", "variables"})


class _Registry(Protocol):
    def get(
        self, name: str, version_or_label: str | None = None, *, user: str | None = None
    ) -> PromptVersion: ...


class RetrievalFailed(PromptError):
    """The retrieval a template needs failed or is not configured (HTTP 503)."""

    status = 503
    type = "server_error"
    code = "retrieval_unavailable"


@dataclass(frozen=True, slots=True)
class PromptResolution:
    """The rewritten body and what the gateway adds to the response.

    Unpacks as ``body, headers = await resolve_prompt(...)``; ``citations`` (retrieval hits as
    ``{"id", "source", "score"}``) and ``prompt`` (the resolved version) are attributes.
    """

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    citations: list[dict[str, Any]] = field(default_factory=list)
    prompt: PromptVersion | None = None

    def __iter__(self) -> Iterator[Any]:
        yield self.body
        yield self.headers


def has_prompt_reference(body: dict[str, Any], endpoint: Endpoint = "chat") -> bool:
    """True when ``body`` carries a prompt object (a completions ``prompt`` string does not)."""
    ref = body.get("prompt")
    return ref is not None and (endpoint != "completions" or isinstance(ref, dict))


async def resolve_prompt(
    body: dict[str, Any],
    registry: _Registry,
    *,
    endpoint: Endpoint = "chat",
    retrieve: Retrieve | None = None,
    user: str | None = None,
) -> PromptResolution:
    """Render ``body["prompt"]`` and merge it into the body.

    - chat: rendered messages go before the request's own ``messages``.
    - completions: a ``prompt`` string or list is the plain completions prompt and passes
      through; a prompt *object* renders to a string: the rendered messages' contents joined by
      blank lines (roles dropped: the gateway has no chat template for raw completions).
    - responses: rendered messages (input items) go before the request's own ``input`` (a
      string is one user message); ``max_tokens`` params become ``max_output_tokens`` and a
      ``response_format`` becomes ``text.format``.
    - The template's ``model``, ``params`` and ``response_format`` apply only where the body does
      not set them (a missing, null or empty ``model`` takes the template's).
    - Canary splits are sticky per ``user`` (argument), else the body's ``user`` or
      ``safety_identifier``.

    Raises :class:`prompts.PromptError` subclasses (status/type/code/param set), never others.
    """
    ref = body.get("prompt")
    if ref is None or (endpoint == "completions" and not isinstance(ref, dict)):
        return PromptResolution(body)
    name, version, variables = _parse_reference(ref)
    sticky = user or body.get("user") or body.get("safety_identifier")
    pv = registry.get(name, version, user=sticky if isinstance(sticky, str) else None)
    tpl = pv.template
    values = tpl.validate_variables(variables)
    context, citations = await _retrieve_context(name, tpl, values, retrieve)
    rendered = tpl.render(values, context=context, _validated=True)
    new = _merge_rendered(body, rendered, endpoint)
    headers = {"x-prompt-name": pv.name, "x-prompt-version": pv.version}
    return PromptResolution(new, headers, citations, pv)


def _parse_reference(ref: Any) -> tuple[str, str | None, Any]:
    """``(id, version or None, variables)`` from the prompt object, checked field by field so
    the client gets an error naming the bad ``param`` (an integer version is accepted as a
    string; an empty one means production)."""
    if not isinstance(ref, dict):
        raise PromptError(
            "prompt must be an object {id, version, variables}", param="prompt", code="invalid_type"
        )
    extra = ref.keys() - _PROMPT_KEYS
    if extra:
        raise PromptError(
            f"unknown field(s) in prompt: {', '.join(sorted(map(str, extra)))}",
            param=f"prompt.{sorted(map(str, extra))[0]}",
            code="unknown_parameter",
        )
    name = ref.get("id")
    if not isinstance(name, str) or not name:
        raise PromptError("prompt.id must be a non-empty string", param="prompt.id")
    version = ref.get("version")
    if version is not None:
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        elif not isinstance(version, str):
            raise PromptError("prompt.version must be a string", param="prompt.version")
    return name, version or None, ref.get("variables")


async def _retrieve_context(
    name: str, tpl: PromptTemplate, values: dict[str, Any], retrieve: Retrieve | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The template's retrieval hits as render context, and their citations; ``(None, [])`` for a
    template without retrieval. Any failure other than a PromptError becomes
    :class:`RetrievalFailed` (503): the request cannot be answered as the template intends."""
    spec = tpl.retrieval
    if spec is None:
        return None, []
    if retrieve is None:
        raise RetrievalFailed(f"prompt {name!r} needs retrieval, which is not configured")
    query = tpl.render_query(values)
    try:
        hits = await retrieve(spec.collection, query, spec.top_k, spec.filters)
    except PromptError:
        raise
    except Exception as e:
        raise RetrievalFailed(
            f"retrieval from {spec.collection!r} failed: {type(e).__name__}: {e}"
        ) from e
    citations = [
        {"id": h.get("id"), "source": h.get("source"), "score": h.get("score")} for h in hits
    ]
    return {spec.variable: hits}, citations


def _merge_rendered(
    body: dict[str, Any], rendered: RenderedPrompt, endpoint: Endpoint
) -> dict[str, Any]:
    """A copy of ``body`` with the rendered prompt in place of the reference; the template's
    model, params and response_format are defaults only, so the request's own values win."""
    new = dict(body)
    if endpoint == "responses":
        return _merge_responses(body, new, rendered)
    if endpoint == "chat":
        own = body.get("messages")
        if own is None:
            own = []
        elif not isinstance(own, list):
            raise PromptError("messages must be an array", param="messages", code="invalid_type")
        new["messages"] = rendered.messages + own
        del new["prompt"]
    else:
        new["prompt"] = "\n\n".join(m["content"] for m in rendered.messages)
    if rendered.model and not body.get("model"):
        new["model"] = rendered.model
    for key, value in rendered.params.items():
        if endpoint == "completions" and key == "max_completion_tokens":
            key = "max_tokens"
        if key not in body:
            new[key] = value
    if rendered.response_format is not None and "response_format" not in body:
        new["response_format"] = rendered.response_format
    return new


def _merge_responses(
    body: dict[str, Any], new: dict[str, Any], rendered: RenderedPrompt
) -> dict[str, Any]:
    own = body.get("input")
    if own is None:
        own = []
    elif isinstance(own, str):
        own = [{"role": "user", "content": own}]
    elif not isinstance(own, list):
        raise PromptError(
            "input must be a string or an array of input items", param="input", code="invalid_type"
        )
    new["input"] = rendered.messages + own
    del new["prompt"]
    if rendered.model and not body.get("model"):
        new["model"] = rendered.model
    for key, value in rendered.params.items():
        if key in ("max_tokens", "max_completion_tokens"):
            key = "max_output_tokens"
        if key not in body:
            new[key] = value
    rf = rendered.response_format
    if rf is not None and "text" not in body:
        fmt = {"type": rf.get("type")}
        if rf.get("type") == "json_schema" and isinstance(rf.get("json_schema"), dict):
            fmt.update(rf["json_schema"])  # Responses flattens name, schema, strict
        new["text"] = {"format": fmt}
    return new


# --- wiring into the gateway (a Plugin for gateway._app.GatewayApp) ------------------------------


class _ReloadCollector:
    """Prometheus collector reading the reloader's status at scrape time (no shared counters)."""

    def __init__(self, reloader: RegistryReloader) -> None:
        self._reloader = reloader

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self._reloader.status()
        yield GaugeMetricFamily(
            "llmops_prompt_registry_loaded", "1 when a prompt registry is loaded", value=st.loaded
        )
        yield GaugeMetricFamily(
            "llmops_prompt_registry_ok",
            "1 when the last prompt reload succeeded (0: serving the last good registry)",
            value=st.ok,
        )
        yield GaugeMetricFamily(
            "llmops_prompt_registry_generation", "Registries swapped in", value=st.generation
        )
        yield GaugeMetricFamily("llmops_prompts", "Prompts in the registry", value=st.prompts)
        yield CounterMetricFamily(
            "llmops_prompt_reload_errors", "Prompt reloads that failed", value=st.errors_total
        )


def reloader_from_config(config: Any) -> RegistryReloader:
    """A reloader for ``gateway._config.PromptsConfig`` (``repo``, ``dir``, ``ref``,
    ``reload_interval_s``): git objects at ``ref``, or the working tree when ``ref`` is null."""
    repo = Path(config.repo)
    if config.ref is None:
        return RegistryReloader.for_directory(repo / config.dir, interval=config.reload_interval_s)
    return RegistryReloader.for_git(repo, config.ref, config.dir, interval=config.reload_interval_s)


def prompt_plugin(reloader: RegistryReloader, retrieve: Retrieve | None = None) -> Any:
    """A gateway plug-in: resolves ``prompt`` objects, reloads in the background, reports.

    Adds a resolver to ``gw.proxy.resolvers`` that rewrites ``ctx.data``, adds the
    ``x-prompt-*`` headers to ``ctx.response_headers`` and sets ``ctx.extensions["prompt"]``
    (the :class:`prompts.PromptVersion`) and ``ctx.extensions["citations"]``; a ``PromptError``
    becomes a ``GatewayError`` with the same status/type/code/param. Starts/stops the reloader
    with the app, adds ``prompts`` to ``/readyz`` (not ready until a first registry loaded; a
    failed reload keeps serving the last good one and shows ``ok: false``), and exports
    ``llmops_prompt_*`` metrics.
    """

    def plugin(gw: Any) -> None:
        from gateway._errors import GatewayError

        async def resolver(ctx: Any) -> bool:
            data = ctx.data
            route = ctx.route
            if data is None or route not in ("chat", "completions", "responses"):
                return False
            endpoint: Endpoint = route
            if not has_prompt_reference(data, endpoint):
                return False
            try:
                res = await resolve_prompt(
                    data, reloader.registry, endpoint=endpoint, retrieve=retrieve
                )
            except PromptError as e:
                raise GatewayError(
                    e.status, e.message, code=e.code, param=e.param, type=e.type
                ) from e
            ctx.data = res.body
            ctx.response_headers.update(res.headers)
            ctx.extensions["prompt"] = res.prompt
            if res.citations:
                ctx.extensions["citations"] = res.citations
            return True

        def readiness() -> tuple[bool, dict[str, Any]]:
            return reloader.ready, {"prompts": reloader.status().to_dict()}

        gw.proxy.resolvers.append(resolver)
        gw.startup.append(reloader.start)
        gw.shutdown.append(reloader.stop)
        gw.readiness_checks.append(readiness)
        gw.state.metrics.registry.register(_ReloadCollector(reloader))

    return plugin
