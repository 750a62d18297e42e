"""Reading what a trace needs out of request and response bodies.

The query is read before prompt resolution rewrites the body (the user's question, not the
rendered template), the output after the response: plain JSON bodies or the relayed SSE chunks.
All of it runs in background threads except :func:`query_text`, which is a few dict reads.
"""

from __future__ import annotations

from typing import Any

import orjson

from common import question_in

# Template variables that usually hold the user's question (same order as the eval harness).

# Request fields that are model parameters (sent to Langfuse as the generation's parameters).
PARAM_KEYS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logprobs",
    "top_logprobs",
    "stream",
    "tool_choice",
    "reasoning_effort",
)


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return None


def query_text(data: dict[str, Any] | None, route: str) -> str | None:
    """The user's query in a request body, before resolution (None when there is none)."""
    if not data:
        return None
    ref = data.get("prompt")
    if isinstance(ref, dict):
        variables = ref.get("variables")
        if isinstance(variables, dict):
            found = question_in(variables, join_others=True)
            if found is not None:
                return found
    if route == "chat":
        messages = data.get("messages")
        if isinstance(messages, list):
            for m in reversed(messages):
                if isinstance(m, dict) and m.get("role") == "user":
                    return _content_text(m.get("content"))
        return None
    if route == "responses":
        return _responses_query(data.get("input"))
    key = "prompt" if route == "completions" else "input"
    v = data.get(key)
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return "\n".join(v)
    return None


def _responses_query(value: Any) -> str | None:
    """A Responses ``input``: the string itself, else the last user message among the input
    items (content a string or ``input_text`` parts)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"))
    return None


def generation_input(data: dict[str, Any] | None, route: str) -> Any:
    """What was sent to the model: messages (chat), prompt (completions), input (embeddings,
    responses)."""
    if not data:
        return None
    if route == "chat":
        return data.get("messages")
    return data.get("prompt" if route == "completions" else "input")


def model_parameters(data: dict[str, Any] | None) -> dict[str, Any]:
    if not data:
        return {}
    params = {k: data[k] for k in PARAM_KEYS if data.get(k) is not None}
    rf = data.get("response_format")
    if isinstance(rf, dict) and isinstance(rf.get("type"), str):
        params["response_format"] = rf["type"]
    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        params["tools"] = len(tools)
    return params


def _message_output(choice: dict[str, Any], route: str) -> Any:
    if route == "completions":
        return choice.get("text")
    msg = choice.get("message")
    if not isinstance(msg, dict):
        return None
    if msg.get("tool_calls"):
        return {k: msg[k] for k in ("content", "tool_calls") if msg.get(k) is not None}
    return msg.get("content")


def body_output(payload: bytes | None, route: str) -> tuple[Any, str | None]:
    """(output, finish_reason) of a non-streamed response body; errors give their message."""
    if not payload:
        return None, None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    err = obj.get("error")
    if isinstance(err, dict):
        return err.get("message"), None
    if route == "embeddings":
        data = obj.get("data")
        return (f"[{len(data)} embeddings]" if isinstance(data, list) else None), None
    if route == "responses":
        status = obj.get("status")
        return _responses_output(obj.get("output")), status if isinstance(status, str) else None
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, None
    first = choices[0]
    if len(choices) == 1:
        return _message_output(first, route), first.get("finish_reason")
    return [_message_output(c, route) for c in choices if isinstance(c, dict)], first.get(
        "finish_reason"
    )


def _responses_output(items: Any) -> Any:
    """The text of a Responses ``output`` (message items' ``output_text`` parts), or, when it
    called tools, ``{"content", "tool_calls"}`` as for chat."""
    if not isinstance(items, list):
        return None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        elif item.get("type") == "function_call":
            calls.append({k: item.get(k) for k in ("call_id", "name", "arguments")})
    text = "".join(texts) if texts else None
    if calls:
        return {k: v for k, v in (("content", text), ("tool_calls", calls)) if v is not None}
    return text


def stream_output(raw: bytes | None, route: str) -> tuple[str | None, str | None]:
    """(text of choice 0, finish_reason) reassembled from the relayed SSE bytes."""
    if not raw:
        return None, None
    parts: list[str] = []
    finish: str | None = None
    error: str | None = None
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        body = line[5:].strip()
        if not body or body == b"[DONE]":
            continue
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("error"), dict):
            error = obj["error"].get("message")
            continue
        if route == "responses":
            kind = obj.get("type")
            if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
                parts.append(obj["delta"])
            elif kind == "error" and isinstance(obj.get("message"), str):
                error = obj["message"]
            elif isinstance(obj.get("response"), dict) and kind != "response.created":
                status = obj["response"].get("status")
                finish = status if isinstance(status, str) else finish
            continue
        for c in obj.get("choices") or ():
            if not isinstance(c, dict) or c.get("index", 0) != 0:
                continue
            if route == "completions":
                piece = c.get("text")
            else:
                delta = c.get("delta")
                piece = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(piece, str):
                parts.append(piece)
            if c.get("finish_reason"):
                finish = c["finish_reason"]
    text = "".join(parts)
    if error is not None:
        text = f"{text}\n[stream error] {error}" if text else f"[stream error] {error}"
    return text, finish
