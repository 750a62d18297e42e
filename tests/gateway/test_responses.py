"""The Responses API through the gateway, with the official SDK, against the fake upstream.

Two replicas of ``chat`` keep their responses (vLLM with ``VLLM_ENABLE_RESPONSES_API_STORE=1``);
``nostore`` has one that does not (vLLM's default), so the store-off answers are shown here;
the real engine shows the store-on path (tests/engine/test_responses_engine.py). The fake
upstream records what the gateway forwarded and which response ids it was asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway import GatewayConfig, hash_key
from gateway._prompt_resolution import prompt_plugin
from gateway._responses import Location, ResponseLocations
from gateway._usage import ResponsesStreamScanner, chat_usage, response_id_from_body
from gateway.limits import limits_plugin
from observability._extract import body_output, query_text, stream_output
from prompts import RegistryReloader
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, LIMITED_KEY, make_config

OTHER_KEY = "sk-test-other"
METERED_KEY = "sk-test-metered"
GREET = """\
name: greet
model: chat
params: {temperature: 0.3, max_tokens: 17}
variables:
  who: {type: string, max_length: 100}
messages:
  - role: system
    content: "You greet people."
  - role: user
    content: "Greet {{ who }}."
"""


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayServer, FakeUpstream, FakeUpstream, FakeUpstream]]:
    a = FakeUpstream(name="a", responses_store=True).start()
    b = FakeUpstream(name="b", responses_store=True).start()
    c = FakeUpstream(name="c").start()  # vLLM's default: responses are not stored
    prompts_dir: Path = tmp_path_factory.mktemp("prompts")
    (prompts_dir / "greet.yaml").write_text(GREET)
    data = make_config([a.url, b.url]).model_dump(mode="json")
    data["models"].append({"name": "nostore", "upstreams": [{"url": c.url}]})
    data["auth"]["keys"] += [
        {"name": "other", "sha256": hash_key(OTHER_KEY)},
        {"name": "metered", "sha256": hash_key(METERED_KEY),
         "limits": {"tokens_per_minute": 2000}},
    ]  # fmt: skip
    reloader = RegistryReloader.for_directory(prompts_dir, interval=60)
    gw = GatewayServer(GatewayConfig(**data), [limits_plugin, prompt_plugin(reloader)]).start()
    yield gw, a, b, c
    gw.stop()
    for u in (a, b, c):
        u.stop()


@pytest.fixture()
def gw(stack: tuple[GatewayServer, FakeUpstream, FakeUpstream, FakeUpstream]) -> GatewayServer:
    server, *ups = stack
    for u in ups:
        u.mode = "ok"
        u.healthy = True
        u.requests.clear()
        u.by_id.clear()
    _wait_available(server)
    return server


@pytest.fixture()
def ups(
    stack: tuple[GatewayServer, FakeUpstream, FakeUpstream, FakeUpstream],
) -> tuple[FakeUpstream, FakeUpstream, FakeUpstream]:
    _, a, b, c = stack
    return a, b, c


def _wait_available(server: GatewayServer, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if all(r.available(now) for p in server.gw.state.pools.values() for r in p.replicas):
            return
        time.sleep(0.05)
    raise AssertionError("replicas did not come back")


def _client(server: GatewayServer, key: str = ADMIN_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def _where(server: GatewayServer, rid: str) -> Location:
    loc = server.gw.responses.locations.get(rid)
    assert loc is not None, f"the gateway does not know {rid}"
    return loc


def _by_url(url: str, *ups: FakeUpstream) -> FakeUpstream:
    return next(u for u in ups if u.url == url)


# --- create, plain and streamed -----------------------------------------------------------------


def test_create_plain(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    before = gw.metric_value("llmops_tokens_total", model="chat", type="completion")
    r = _client(gw).responses.create(model="chat-alias", input="hello there")
    assert r.object == "response" and r.status == "completed"
    assert r.output_text.endswith("echo: hello there")
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (7, 5)
    forwarded = [q for u in ups for q in u.requests]
    assert forwarded == [{"model": "served-chat", "input": "hello there"}]
    assert gw.metric_value("llmops_requests_total", route="responses", status="200") >= 1
    after = gw.metric_value("llmops_tokens_total", model="chat", type="completion")
    assert after - before == 5  # output_tokens counted as completion tokens


def test_create_streamed(gw: GatewayServer) -> None:
    before = gw.metric_value("llmops_requests_total", route="responses", status="200")
    prompt_before = gw.metric_value("llmops_tokens_total", model="chat", type="prompt")
    stream = _client(gw).responses.create(model="chat", input="stream me", stream=True)
    events = list(stream)
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "echo: stream" in text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.id == events[0].response.id  # type: ignore[union-attr]
    # Settled as a complete stream (no [DONE] in the Responses API), with its usage.
    after = gw.metric_value("llmops_requests_total", route="responses", status="200")
    assert after - before == 1
    assert gw.metric_value("llmops_tokens_total", model="chat", type="prompt") - prompt_before == 7
    assert _where(gw, final.id).model == "chat"


def test_stream_helper_final_response(gw: GatewayServer) -> None:
    with _client(gw).responses.stream(model="chat", input="helper") as s:
        for _ in s:
            pass
        final = s.get_final_response()
    assert final.status == "completed" and "echo: helper" in final.output_text


def test_cut_stream_ends_with_an_error(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    for u in ups:
        u.mode = "truncate"
    before = gw.metric_value("llmops_requests_total", route="responses", status="502")
    stream = _client(gw).responses.create(model="chat", input="cut", stream=True)
    with pytest.raises(openai.APIError, match=r"mid-stream|ended the stream early"):
        list(stream)
    assert gw.metric_value("llmops_requests_total", route="responses", status="502") > before


# --- keys, models, bad input ------------------------------------------------------------------


def test_auth_and_model_access(gw: GatewayServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(gw, "sk-wrong").responses.create(model="chat", input="x")
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _client(gw, LIMITED_KEY).responses.create(model="chat", input="x")
    assert denied.value.body["code"] == "model_not_allowed"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        _client(gw).responses.create(model="nope", input="x")
    assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        _client(gw, "sk-wrong").responses.retrieve("resp_x")


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (b'{"model": "chat"}', "input"),
        (b'{"model": "chat", "input": 5}', "input"),
        (b'{"model": "chat", "input": {"role": "user"}}', "input"),
        (b'{"model": "chat", "input": "x", "stream": "yes"}', "stream"),
        (b'{"model": "chat", "input": "x", "previous_response_id": 7}', "previous_response_id"),
        (b'{"model": "chat", "input": "x", "prompt": "greet"}', "prompt"),
        (b'{"model": "chat", "prompt": {"id": "greet", "variables": {"who": 3}}}', None),
    ],
)
def test_bad_input_is_an_openai_400(gw: GatewayServer, content: bytes, param: str | None) -> None:
    hdrs = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    r = httpx.post(gw.url + "/v1/responses", content=content, headers=hdrs)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_limits_charge_input_and_output_tokens(gw: GatewayServer, stream: bool) -> None:
    """The estimate reads ``max_output_tokens``; the charge is the usage's input + output."""
    c = _client(gw, METERED_KEY).responses.with_raw_response

    def remaining() -> int:
        raw = c.create(model="chat", input="count me", max_output_tokens=100, stream=stream)
        if stream:
            list(raw.parse())
        return int(raw.headers["x-ratelimit-remaining-tokens"])

    first, second = remaining(), remaining()
    reserved = 2000 - first
    assert reserved >= 100  # body bytes / 4 + max_output_tokens
    # The second reservation sees the first one reconciled to its usage: 7 in + 5 out.
    assert 10 <= first - second <= 12


# --- prompt resolution through the native ``prompt`` parameter ---------------------------------


def test_prompt_renders_into_input(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    raw = _client(gw).responses.with_raw_response.create(
        model="chat", prompt={"id": "greet", "variables": {"who": "Ada"}}, input="Be brief."
    )
    assert raw.headers["x-prompt-name"] == "greet"
    assert raw.parse().output_text.endswith("echo: Be brief.")
    (sent,) = [q for u in ups for q in u.requests]
    assert "prompt" not in sent
    assert sent["input"] == [
        {"role": "system", "content": "You greet people."},
        {"role": "user", "content": "Greet Ada."},
        {"role": "user", "content": "Be brief."},
    ]
    assert sent["max_output_tokens"] == 17 and sent["temperature"] == 0.3


def test_prompt_alone_gives_the_input(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    r = _client(gw).responses.create(  # model "": the template's
        model="", prompt={"id": "greet", "variables": {"who": "Bo"}}, max_output_tokens=5
    )
    assert r.output_text.endswith("echo: Greet Bo.")
    (sent,) = [q for u in ups for q in u.requests]
    assert sent["max_output_tokens"] == 5  # the request's own value wins


def test_unknown_prompt_is_a_clear_error(gw: GatewayServer) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        _client(gw).responses.create(model="chat", prompt={"id": "nope"}, input="x")
    assert e.value.status_code == 404 and "nope" in e.value.message
    assert e.value.body["code"] == "prompt_not_found"  # type: ignore[index]


# --- stored responses: retrieve, previous_response_id, cancel -------------------------------------


def test_retrieve_goes_to_the_replica_that_created_it(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    a, b, _ = ups
    c = _client(gw)
    made = [c.responses.create(model="chat", input=f"n{i}") for i in range(4)]
    assert {_where(gw, r.id).url for r in made} == {a.url, b.url}  # spread over both
    for r in made:
        got = c.responses.retrieve(r.id)
        assert got.id == r.id and got.output_text == r.output_text
        owner = _by_url(_where(gw, r.id).url, a, b)
        other = b if owner is a else a
        assert ("GET", r.id) in owner.by_id and ("GET", r.id) not in other.by_id
    assert gw.metric_value("llmops_requests_total", route="responses_get", status="200") >= 4


def test_streamed_response_is_remembered(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    a, b, _ = ups
    events = list(_client(gw).responses.create(model="chat", input="s", stream=True))
    rid = events[0].response.id  # type: ignore[union-attr]
    owner = _by_url(_where(gw, rid).url, a, b)
    assert rid in owner.stored
    assert _client(gw).responses.retrieve(rid).id == rid


def test_previous_response_id_is_pinned(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    a, b, _ = ups
    c = _client(gw)
    first = c.responses.create(model="chat", input="one")
    owner = _by_url(_where(gw, first.id).url, a, b)
    for _ in range(4):  # least-busy routing alone would alternate replicas
        nxt = c.responses.create(model="chat", input="two", previous_response_id=first.id)
        assert nxt.output_text.endswith(f"(after {first.id})")
        assert owner.requests[-1]["previous_response_id"] == first.id
    streamed = list(
        c.responses.create(model="chat", input="3", previous_response_id=first.id, stream=True)
    )
    assert streamed[-1].type == "response.completed"
    assert owner.requests[-1]["previous_response_id"] == first.id


def test_unknown_ids_are_looked_for_on_every_replica(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    """After a gateway restart (the map is in its memory) ids are found by asking."""
    a, b, _ = ups
    c = _client(gw)
    made = [c.responses.create(model="chat", input=f"m{i}") for i in range(2)]
    where = {r.id: _where(gw, r.id).url for r in made}
    gw.gw.responses.locations.clear()
    for r in made:
        assert c.responses.retrieve(r.id).id == r.id
        assert _where(gw, r.id).url == where[r.id]
    gw.gw.responses.locations.clear()
    nxt = c.responses.create(model="chat", input="x", previous_response_id=made[0].id)
    assert nxt.output_text.endswith(f"(after {made[0].id})")
    assert _by_url(where[made[0].id], a, b).requests[-1]["previous_response_id"] == made[0].id


def test_missing_ids_get_a_clear_404(gw: GatewayServer) -> None:
    c = _client(gw)
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.retrieve("resp_never")
    body: Any = e.value.body
    assert body["code"] == "response_not_found" and body["param"] == "response_id"
    assert "VLLM_ENABLE_RESPONSES_API_STORE=1" in body["message"]
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.create(model="chat", input="x", previous_response_id="resp_never")
    body = e.value.body
    assert body["code"] == "previous_response_not_found"
    assert body["param"] == "previous_response_id" and "responses_store" in body["message"]


def test_store_off_answers_name_the_setting(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    """vLLM without ``VLLM_ENABLE_RESPONSES_API_STORE=1`` creates the response but keeps
    nothing: retrieve and previous_response_id answer its 404 ``Response with id ... not
    found.`` (code 404, an integer); the gateway says why."""
    *_, c_up = ups
    c = _client(gw)
    r = c.responses.create(model="nostore", input="forget me")
    assert r.output_text.endswith("echo: forget me")
    assert _where(gw, r.id).url == c_up.url
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.retrieve(r.id)
    body: Any = e.value.body
    assert body["message"].startswith(f"Response '{r.id}' is not stored on the replica")
    assert "VLLM_ENABLE_RESPONSES_API_STORE=1" in body["message"]
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.create(model="nostore", input="again", previous_response_id=r.id)
    body = e.value.body
    assert body["code"] == "previous_response_not_found"
    assert f"Previous response '{r.id}' is not stored" in body["message"]
    # background needs the store: vLLM's own 400 already names the variable.
    with pytest.raises(openai.BadRequestError, match="VLLM_ENABLE_RESPONSES_API_STORE=1"):
        c.responses.create(model="nostore", input="bg", background=True)


def test_other_keys_cannot_read_or_continue(gw: GatewayServer) -> None:
    r = _client(gw).responses.create(model="chat", input="mine")
    other = _client(gw, OTHER_KEY)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        other.responses.create(model="chat", input="x", previous_response_id=r.id)
    assert e.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        other.responses.cancel(r.id)


def test_continuing_with_another_model_is_refused(gw: GatewayServer) -> None:
    r = _client(gw).responses.create(model="chat", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        _client(gw).responses.create(model="nostore", input="y", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert "'chat'" in e.value.message


def test_cancel_and_delete(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    c = _client(gw)
    r = c.responses.create(model="chat", input="x")
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a synchronous response"):
        c.responses.cancel(r.id)  # vLLM's answer, from the replica holding it
    assert [x for u in ups for x in u.by_id] == [("cancel", r.id)]
    with pytest.raises(openai.APIStatusError) as e:
        c.responses.delete(r.id)
    assert e.value.status_code == 405 and "no DELETE" in e.value.message


def test_pinned_replica_down_is_a_503(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    a, b, _ = ups
    c = _client(gw)
    r = c.responses.create(model="chat", input="x")
    owner = _by_url(_where(gw, r.id).url, a, b)
    owner.healthy = False
    replica = next(x for x in gw.gw.state.pools["chat"].replicas if x.url == owner.url)
    deadline = time.monotonic() + 10
    while replica.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(openai.InternalServerError) as e:
        c.responses.create(model="chat", input="y", previous_response_id=r.id)
    assert e.value.status_code == 503
    assert e.value.body["code"] == "previous_response_unavailable"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError):
        c.responses.retrieve(r.id)
    # A new conversation is not pinned: the other replica takes it.
    assert c.responses.create(model="chat", input="z").status == "completed"


def test_failover_remembers_the_replica_that_answered(
    gw: GatewayServer, ups: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    a, b, _ = ups
    a.mode = "error503"
    try:
        r = _client(gw).responses.create(model="chat", input="x")
        assert _where(gw, r.id).url == b.url
    finally:
        a.mode = "ok"


# --- the Agents SDK ---------------------------------------------------------------------------


async def test_agents_sdk_one_tool_agent(gw: GatewayServer, ups: tuple[FakeUpstream, ...]) -> None:
    """A one-tool agent over ``OpenAIResponsesModel``; the fake calls the tool when
    ``tool_choice`` is "required" (as SmolLM2 on vLLM does), then answers from its output."""
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
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Use the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model="chat", openai_client=client),
        model_settings=ModelSettings(tool_choice="required"),
    )
    result = await Runner.run(agent, "Paris", max_turns=3)
    assert calls == ["Paris"]
    assert result.final_output.startswith("tool said sunny in Paris")
    sent = [q for u in ups for q in u.requests]
    assert len(sent) == 2
    (first,) = [q for q in sent if q.get("tool_choice") == "required"]
    (second,) = [q for q in sent if "tool_choice" not in q]  # reset after the tool ran
    assert first["tools"][0]["strict"] is True
    assert any(i.get("type") == "function_call_output" for i in second["input"])


# --- the pieces -------------------------------------------------------------------------------


def _vllm_stream(rid: str) -> bytes:
    """vLLM 0.32's framing: ``event:`` lines, ``type`` as the last key."""
    events = [
        {"response": {"id": rid, "output": [], "usage": None}, "sequence_number": 0,
         "type": "response.created"},
        {"delta": 'say "usage": {"x": 1}', "sequence_number": 1,
         "type": "response.output_text.delta"},
        {"response": {"id": rid, "usage": {"input_tokens": 32, "output_tokens": 5,
                      "total_tokens": 37, "input_tokens_details": {"cached_tokens": 4}}},
         "sequence_number": 2, "type": "response.completed"},
    ]  # fmt: skip
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"  # type: ignore[attr-defined]
        for e in events
    )


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_stream_scanner_across_chunk_boundaries(size: int) -> None:
    raw = _vllm_stream("resp_abc")
    ext: dict[str, Any] = {}
    s = ResponsesStreamScanner(ext)
    end = raw.index(b'"type":"response.completed"}') + len(b'"type":"response.completed"}')
    for i in range(0, len(raw), size):
        s.feed(raw[i : i + size])
        if i + size < end + 1:  # the terminal line is not complete yet
            assert not s.ended
    assert s.ended and ext["response_id"] == "resp_abc"
    assert s.usage == {"prompt_tokens": 32, "completion_tokens": 5, "total_tokens": 37,
                       "prompt_tokens_details": {"cached_tokens": 4}}  # fmt: skip


def test_stream_scanner_failed_and_error_events_end_the_stream() -> None:
    for event in (
        {"type": "response.failed", "response": {"id": "r1", "usage": None}},
        {"type": "response.incomplete", "response": {"id": "r1", "usage": None}},
        {"type": "error", "code": "x", "message": "m", "param": None, "sequence_number": 3},
    ):
        s = ResponsesStreamScanner({})
        s.feed(b"data: " + orjson.dumps(event) + b"\n\n")
        assert s.ended and s.usage is None


def test_usage_and_id_readers() -> None:
    assert chat_usage({"prompt_tokens": 1, "total_tokens": 1}) == {"prompt_tokens": 1,
                                                                 "total_tokens": 1}  # fmt: skip
    assert chat_usage({"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}) == {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}  # fmt: skip
    body = b'{"object":"response","output":[{"id":"msg_1"}],"id":"resp_9","x":{"id":"no"}}'
    assert response_id_from_body(body) == "resp_9"
    assert response_id_from_body(b'{"output":[{"id":"msg_1"}]}') is None


def test_locations_are_bounded_lru() -> None:
    locs = ResponseLocations(max_entries=3)
    for i in range(3):
        locs.remember(f"r{i}", Location("m", "u", None))
    assert locs.get("r0") is not None  # r0 is now the most recent
    locs.remember("r3", Location("m", "u", None))
    assert len(locs) == 3 and locs.get("r1") is None and locs.get("r0") is not None


def test_trace_extraction_for_responses() -> None:
    assert query_text({"input": "hi"}, "responses") == "hi"
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"type": "function_call_output", "call_id": "c", "output": "o"},
        {"role": "user", "content": "last"},
    ]
    assert query_text({"input": items}, "responses") == "last"
    body = orjson.dumps({"status": "completed", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Paris."}]}]})  # fmt: skip
    assert body_output(body, "responses") == ("Paris.", "completed")
    call = orjson.dumps({"status": "completed", "output": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]})  # fmt: skip
    out, _ = body_output(call, "responses")
    assert out == {"tool_calls": [{"call_id": "c1", "name": "f", "arguments": "{}"}]}
    text, finish = stream_output(_vllm_stream("r"), "responses")
    assert text == 'say "usage": {"x": 1}' and finish is None
