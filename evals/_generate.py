"""Build one chat request per case and send it through the gateway with the official SDK.

The eval talks to the model exactly as users do: the OpenAI SDK against the gateway, the prompt
sent as a reference (``extra_body={"prompt": ...}``) that the gateway renders from git, or
rendered here (``render: local``) when the gateway is not the thing under test.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from evals._dataset import Case
from evals._prompt_refs import ResolvedPrompt
from evals._results import Generation
from evals._suite import Suite


@dataclass(frozen=True, slots=True)
class Request:
    """A fully determined request; ``key_parts`` is what the cache key is made of."""

    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]  # everything else (params, seed, prompt reference, response_format)
    key_parts: dict[str, Any]


def case_seed(seed: int, case_id: str, repeat: int) -> int:
    """A per-(case, repeat) seed, the same for base and head so the comparison is paired."""
    h = hashlib.sha256(f"{seed}:{case_id}:{repeat}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def build_request(
    suite: Suite, case: Case, repeat: int, prompt: ResolvedPrompt | None, model: str | None
) -> Request:
    t = suite.target
    seed = case_seed(suite.seed, case.id, repeat)
    own = list(case.messages or [])
    body: dict[str, Any] = {"seed": seed}
    if prompt is None:
        if not model:
            raise ValueError("a suite without target.prompt needs target.model")
        messages, name = own, model
        body.update(t.params)
    elif t.render == "gateway":
        tpl: Any = prompt.template
        name = model or tpl.model
        messages = own
        body.update(t.params)
        body["prompt"] = {"id": prompt.name, "version": prompt.version, "variables": case.vars}
    else:
        tpl = prompt.template
        context = None
        if tpl.retrieval is not None:
            # ids as a collection ingested from the dataset would have them: "<case id>-<n>"
            docs = [
                {
                    "id": f"{case.id}-{i + 1}",
                    "text": c,
                    "source": "",
                    "score": 1.0,
                }
                for i, c in enumerate(case.contexts)
            ]
            context = {tpl.retrieval.variable: docs}
        rendered = tpl.render(case.vars, context=context)
        name = model or rendered.model
        messages = rendered.messages + own
        body.update(rendered.params)
        body.update(t.params)
        if rendered.response_format is not None:
            body.setdefault("response_format", rendered.response_format)
    if not name:
        raise ValueError("no model: set target.model or the template's model")
    key_parts = {
        "prompt": prompt.name if prompt else None,
        "version": prompt.version if prompt else None,
        "render": t.render if prompt else "messages",
        "model": name,
        "messages": messages,
        "body": {k: v for k, v in body.items() if k != "prompt"},
        "vars": case.vars,
        "contexts": case.contexts if t.render == "local" else None,
        "repeat": repeat,
    }
    return Request(name, messages, body, key_parts)


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def parse_response(data: dict[str, Any], headers: Any, citations_field: str) -> Generation:
    choices = data.get("choices") or []
    if not choices:
        return Generation(error="response has no choices")
    msg = choices[0].get("message") or {}
    text = msg.get("content")
    if not isinstance(text, str):
        return Generation(error="response message has no text content")
    usage = data.get("usage") or {}
    hits = _dig(data, citations_field) or []
    ids: list[str] = []
    ctx: list[str] = []
    if isinstance(hits, list):
        for h in hits:
            if isinstance(h, dict):
                if h.get("id") is not None:
                    ids.append(str(h["id"]))
                if isinstance(h.get("text"), str):
                    ctx.append(h["text"])
            elif isinstance(h, str | int):
                ids.append(str(h))
    return Generation(
        text=text,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        citations=ids,
        contexts=ctx,
        served_version=headers.get("x-prompt-version") if headers is not None else None,
    )


async def generate(client: Any, req: Request, suite: Suite) -> Generation:
    """Send ``req``; any failure comes back as ``Generation(error=...)``, never as an exception."""
    import openai

    t0 = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=req.model, messages=req.messages, extra_body=req.body
        )
        data = json.loads(raw.http_response.text)
    except openai.APIStatusError as e:
        return Generation(error=f"HTTP {e.status_code}: {_message(e)}")
    except openai.APIError as e:
        return Generation(error=f"{type(e).__name__}: {e}")
    except ValueError as e:
        return Generation(error=f"response is not JSON: {e}")
    latency = (time.perf_counter() - t0) * 1000
    gen = parse_response(data, raw.headers, suite.target.citations_field)
    gen.latency_ms = latency
    want = (req.body.get("prompt") or {}).get("version")
    if want and gen.served_version is None:
        gen.error = (
            "the gateway did not render the prompt (no x-prompt-version header): enable prompts "
            "in the gateway config, or set target.render: local"
        )
    elif want and gen.served_version != want:
        gen.error = f"gateway served prompt version {gen.served_version}, asked for {want}"
    return gen


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(e)
