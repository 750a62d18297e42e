"""gateway._prompt_resolution on dict bodies, with the shipped templates and a temp git repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway._prompt_resolution import PromptResolution, RetrievalFailed, resolve_prompt
from prompts import (
    HistoryUnavailable,
    PromptError,
    PromptNotFound,
    PromptRegistry,
    TemplateRenderError,
    VariableError,
)

from .conftest import Repo

SHIPPED = Path(__file__).resolve().parents[2] / "prompts"


@pytest.fixture(scope="module")
def shipped() -> PromptRegistry:
    return PromptRegistry.from_directory(SHIPPED, history=False)


class FakeRetrieve:
    """Stands in for the retrieval engineer's callable (its own tests cover real Qdrant)."""

    def __init__(self, hits: list[dict[str, Any]]) -> None:
        self.hits = hits
        self.calls: list[tuple[str, str, int, dict[str, Any] | None]] = []

    async def __call__(
        self, collection: str, query: str, top_k: int, filters: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        self.calls.append((collection, query, top_k, filters))
        return self.hits[:top_k]


HITS = [
    {"id": "p1", "score": 0.9, "text": "Paris is the capital of France.", "source": "geo.md",
     "metadata": {}},
    {"id": "p2", "score": 0.5, "text": "Lyon is a city.", "source": "cities.md", "metadata": {}},
]  # fmt: skip


async def test_body_without_prompt_is_returned_untouched(shipped: PromptRegistry) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    res = await resolve_prompt(body, shipped)
    assert res.body is body and res.headers == {} and res.citations == []
    new, headers = res  # unpacks as (body, headers)
    assert new is body and headers == {}
    # a completions prompt string is the plain completions API, not a template reference
    body = {"model": "m", "prompt": "Once upon"}
    assert (await resolve_prompt(body, shipped, endpoint="completions")).body is body


async def test_chat_prepends_messages_and_applies_template_defaults(
    shipped: PromptRegistry,
) -> None:
    body = {
        "messages": [{"role": "user", "content": "and keep it short"}],
        "temperature": 0.9,
        "prompt": {"id": "summarise", "variables": {"text": "Long text.", "sentences": 1}},
    }
    new, headers = await resolve_prompt(body, shipped)
    assert "prompt" not in new and "prompt" in body  # input not mutated
    assert [m["role"] for m in new["messages"]] == ["system", "user", "user"]
    assert new["messages"][0]["content"].startswith("Summarise the text in at most 1 sentence.")
    assert new["messages"][1]["content"] == "Long text."
    assert new["messages"][2]["content"] == "and keep it short"
    assert new["model"] == "smollm2-135m-instruct"  # body had none
    assert new["temperature"] == 0.9  # body wins
    assert new["max_tokens"] == 120  # template default
    pv = shipped.get("summarise")
    assert headers == {"x-prompt-name": "summarise", "x-prompt-version": pv.version}


async def test_body_model_and_response_format_win(shipped: PromptRegistry) -> None:
    body = {"model": "mine", "messages": [], "prompt": {"id": "extract-json",
            "variables": {"text": "Bob paid 3 EUR"}}}  # fmt: skip
    new, _ = await resolve_prompt(body, shipped)
    assert new["model"] == "mine"
    assert new["response_format"] == {"type": "json_object"}
    body["response_format"] = {"type": "text"}
    new, _ = await resolve_prompt(body, shipped)
    assert new["response_format"] == {"type": "text"}


async def test_completions_render_to_a_prompt_string(shipped: PromptRegistry) -> None:
    body = {"model": "m", "prompt": {"id": "summarise", "variables": {"text": "T."}}}
    new, headers = await resolve_prompt(body, shipped, endpoint="completions")
    assert isinstance(new["prompt"], str)
    assert new["prompt"].endswith("\n\nT.") and "messages" not in new
    assert headers["x-prompt-name"] == "summarise"


async def test_retrieval_block_calls_retrieve_and_returns_citations(
    shipped: PromptRegistry,
) -> None:
    retrieve = FakeRetrieve(HITS)
    prompt = {"id": "rag-answer", "variables": {"question": "Capital of France?"}}
    body = {"model": "m", "messages": [], "prompt": prompt}
    res = await resolve_prompt(body, shipped, retrieve=retrieve)
    assert isinstance(res, PromptResolution)
    assert retrieve.calls == [("docs", "Capital of France?", 3, None)]
    user = res.body["messages"][1]["content"]
    assert "[1] Paris is the capital of France." in user and "[2] Lyon is a city." in user
    assert res.citations == [
        {"id": "p1", "source": "geo.md", "score": 0.9},
        {"id": "p2", "source": "cities.md", "score": 0.5},
    ]


async def test_retrieval_failures_are_prompt_errors(shipped: PromptRegistry) -> None:
    body = {"model": "m", "prompt": {"id": "rag-answer", "variables": {"question": "q"}}}
    with pytest.raises(RetrievalFailed) as ei:
        await resolve_prompt(body, shipped)
    assert ei.value.status == 503

    async def broken(*_: Any) -> list[dict[str, Any]]:
        raise ConnectionError("qdrant down")

    with pytest.raises(RetrievalFailed, match="qdrant down"):
        await resolve_prompt(body, shipped, retrieve=broken)


@pytest.mark.parametrize(
    ("prompt", "exc", "status", "param"),
    [
        ({"id": "nope"}, PromptNotFound, 404, "prompt.id"),
        ({"id": "summarise", "version": "ffffffffffff"}, HistoryUnavailable, 404,
         "prompt.version"),
        ({"id": "summarise", "variables": {}}, VariableError, 400, "prompt.variables.text"),
        ({"id": "summarise", "variables": {"text": 5}}, VariableError, 400,
         "prompt.variables.text"),
        ({"id": "summarise", "variables": {"text": "x", "sentences": "2"}}, VariableError, 400,
         "prompt.variables.sentences"),
        ({"id": "summarise", "variables": "text"}, VariableError, 400, "prompt.variables"),
        ({"id": "summarise", "vars": {}}, PromptError, 400, "prompt.vars"),
        ({"id": ""}, PromptError, 400, "prompt.id"),
        ({"id": "summarise", "version": 1.5}, PromptError, 400, "prompt.version"),
        ("summarise", PromptError, 400, "prompt"),
    ],
)  # fmt: skip
async def test_errors_carry_status_and_param(
    shipped: PromptRegistry, prompt: Any, exc: type[PromptError], status: int, param: str
) -> None:
    with pytest.raises(exc) as ei:
        await resolve_prompt({"model": "m", "messages": [], "prompt": prompt}, shipped)
    assert ei.value.status == status
    assert ei.value.param == param
    err = ei.value.to_openai()["error"]
    assert set(err) == {"message", "type", "param", "code"}


async def test_template_error_is_422_not_500(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "evil.yaml").write_text(
        "name: evil\nvariables: {v: {}}\n"
        'messages: [{role: user, content: "{{ cycler.__init__.__globals__ }}"}]\n'
    )
    reg = PromptRegistry.from_directory(d, history=False)
    with pytest.raises(TemplateRenderError) as ei:
        await resolve_prompt({"prompt": {"id": "evil", "variables": {"v": "x"}}}, reg)
    assert ei.value.status == 422


async def test_versions_labels_and_sticky_canary_through_resolution(repo: Repo) -> None:
    repo.prompt("greet", "old {{ who }}")
    repo.commit("old")
    old = PromptRegistry.from_git(repo.path).get("greet").version
    repo.prompt("greet", "new {{ who }}")
    repo.write(
        "prompts/labels.yaml",
        f"labels:\n  staging: {{greet: {old}}}\n"
        f"  canary: {{greet: {{version: {old}, weight: 0.3}}}}\n",
    )
    repo.commit("new + canary")
    reg = PromptRegistry.from_git(repo.path)

    async def first(prompt: dict[str, Any], **body: Any) -> tuple[str, str]:
        new, headers = await resolve_prompt({"messages": [], "prompt": prompt, **body}, reg)
        return new["messages"][0]["content"], headers["x-prompt-version"]

    assert await first({"id": "greet", "version": old, "variables": {"who": "a"}}) == (
        "old a", old)  # fmt: skip
    assert (await first({"id": "greet", "version": "staging", "variables": {"who": "a"}}))[1] == old
    n = 4000
    arms = [
        (await first({"id": "greet", "variables": {"who": "a"}}, user=f"u{i}"))[1] for i in range(n)
    ]
    assert abs(arms.count(old) / n - 0.3) < 0.03
    again = [
        (await first({"id": "greet", "variables": {"who": "a"}}, user=f"u{i}"))[1]
        for i in range(200)
    ]
    assert again == arms[:200]  # sticky per user
    # the gateway may pass its own sticky key (e.g. the API key id) instead of body.user
    res = await resolve_prompt(
        {"messages": [], "prompt": {"id": "greet", "variables": {"who": "a"}}}, reg, user="u7"
    )
    assert res.headers["x-prompt-version"] == arms[7]


async def test_very_large_and_unicode_variables(shipped: PromptRegistry) -> None:
    text = "🚀 naïve 世界 " * 800  # within summarise's max_length of 12000
    new, _ = await resolve_prompt(
        {"messages": [], "prompt": {"id": "summarise", "variables": {"text": text}}}, shipped
    )
    assert new["messages"][1]["content"] == text.strip()
    with pytest.raises(VariableError, match="max_length 12000"):
        await resolve_prompt(
            {"prompt": {"id": "summarise", "variables": {"text": "x" * 1_000_000}}}, shipped
        )
