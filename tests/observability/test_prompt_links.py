"""Generations link to prompts synced into Langfuse, by Langfuse's own version numbers.

``llmops prompts sync-langfuse`` gives each git version of a prompt a Langfuse version number;
the gateway reads that mapping in a background thread (never on the request path) and the span
carries ``langfuse.observation.prompt.name`` / ``.version`` as Langfuse expects, so its
per-prompt-version metrics fill. Langfuse itself cannot run here: the stub answers Langfuse's
public prompt API in its recorded shapes, and the official SDK's API client talks to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway._app import GatewayApp
from gateway._context import RequestContext
from gateway._prompt_resolution import has_prompt_reference, resolve_prompt
from observability import trace_id_for
from prompts import LangfuseSettings, PromptRegistry, PromptVersion, sync_to_langfuse
from tests.observability.conftest import ADMIN_KEY, obs_config
from tests.observability.test_export import wait_for
from tests.observability.test_tracing import REPO, by_trace, spans_of
from tests.prompts.test_langfuse_sync import PK, SK, LangfuseStub


@pytest.fixture()
def stub() -> Iterator[LangfuseStub]:
    s = LangfuseStub()
    s.thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


class _One:
    """The registry contract the resolver needs, serving one real git version."""

    def __init__(self, pv: PromptVersion) -> None:
        self.pv = pv

    def get(self, name: str, version: str | None = None, *, user: str | None = None) -> Any:
        return self.pv


def _plugin(pv: PromptVersion) -> Any:
    registry = _One(pv)

    async def retrieve(collection: str, query: str, top_k: int, filters: Any) -> list[Any]:
        return [{"id": "d1", "score": 0.9, "text": "Paris.", "source": "geo.md", "metadata": {}}]

    def plugin(gw: GatewayApp) -> None:
        async def resolver(ctx: RequestContext) -> bool:
            if ctx.data is None or not has_prompt_reference(ctx.data, "chat"):
                return False
            res = await resolve_prompt(ctx.data, registry, retrieve=retrieve)
            ctx.data = res.body
            ctx.extensions["prompt"] = res.prompt
            return True

        gw.proxy.resolvers.append(resolver)

    return plugin


def _traced_rag_request(
    start_gateway: Any, stub: LangfuseStub, pv: PromptVersion, request_id: str
) -> tuple[Any, dict[str, Any]]:
    """A gateway whose prompt links were read once, and the generation of one RAG request."""
    cfg = obs_config({"langfuse": {"public_key": PK, "secret_key": SK, "base_url": stub.url}})
    gw, exp = start_gateway(cfg, extra=[_plugin(pv)])
    links = gw.gw.observability.prompt_links
    wait_for(lambda: links.refreshed > 0)
    asked = len(stub.seen)
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    c.chat.completions.create(
        model="chat",
        messages=[],
        extra_body={"prompt": {"id": "rag-answer", "variables": {"question": "Capital?"}}},
        extra_headers={"x-request-id": request_id},
    )
    gen = by_trace(spans_of(gw, exp), trace_id_for(request_id))["generation"]
    # the request and its trace asked Langfuse's prompt API nothing (next refresh: 300 s)
    assert len(stub.seen) == asked
    return links, dict(gen.attributes)


def test_generation_links_to_the_synced_prompt(start_gateway: Any, stub: LangfuseStub) -> None:
    reg = PromptRegistry.from_git(REPO)
    settings = LangfuseSettings(public_key=PK, secret_key=SK, base_url=stub.url)
    result = sync_to_langfuse(reg, settings)
    pv = reg.get("rag-answer")
    (item,) = [i for i in result.items if i.prompt == "rag-answer" and i.git_version == pv.version]
    links, ga = _traced_rag_request(start_gateway, stub, pv, "req-link-1")
    assert links.get("rag-answer", pv.version) == item.langfuse_version
    assert ga["langfuse.observation.prompt.name"] == "rag-answer"
    assert ga["langfuse.observation.prompt.version"] == item.langfuse_version
    assert ga["langfuse.version"] == pv.version  # the git version stays the observation version


def test_unsynced_prompt_has_no_link(start_gateway: Any, stub: LangfuseStub) -> None:
    pv = PromptRegistry.from_git(REPO).get("rag-answer")
    _links, ga = _traced_rag_request(start_gateway, stub, pv, "req-link-2")
    assert "langfuse.observation.prompt.version" not in ga
    assert ga["langfuse.version"] == pv.version
