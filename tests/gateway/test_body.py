"""The replica's model name goes into the body's bytes; nothing else of the body changes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._body import MAX_ENCODE_DEPTH, encode, splice_model, with_model
from gateway._errors import GatewayError

# Text that looks like JSON structure and like the key itself, to trip a naive scanner.
_tricky = st.text(alphabet='"\\{}[]:, model\n\tAé', max_size=12)
_keys = st.sampled_from(["model", "messages", "x", "", "model ", "Model"]) | _tricky
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(-1e9, 1e9) | _tricky,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=3),
    max_leaves=12,
)


def _dump(obj: Any, style: int) -> bytes:
    if style == 0:
        return orjson.dumps(obj)
    if style == 1:
        return json.dumps(obj, ensure_ascii=False).encode()
    return json.dumps(obj, indent=style, ensure_ascii=True, separators=(" ,", " :  ")).encode()


@given(
    others=st.dictionaries(_keys.filter(lambda k: k != "model"), _json, max_size=5),
    position=st.integers(0, 5),
    old=_tricky,
    style=st.integers(0, 3),
)
@settings(max_examples=300, deadline=None)
def test_splice_sets_only_the_top_level_model(
    others: dict[str, Any], position: int, old: str, style: int
) -> None:
    items = list(others.items())
    items.insert(min(position, len(items)), ("model", old))
    body = _dump(dict(items), style)
    out = splice_model(body, "served-name")
    if b"\\u006" in body:  # an escaped letter may spell the key: left to re-encoding
        assert out is None
        return
    assert out is not None
    assert orjson.loads(out) == {**orjson.loads(body), "model": "served-name"}
    # Byte for byte the same outside the value: the client's formatting reaches the replica.
    value = orjson.dumps(old) if style == 0 else json.dumps(old, ensure_ascii=style > 1).encode()
    start = out.index(b'"served-name"')
    assert out[:start] == body[:start]
    assert out[start + len(b'"served-name"') :] == body[start + len(value) :]


def test_nested_and_quoted_model_keys_are_left_alone() -> None:
    body = (
        b'{"messages":[{"role":"user","content":"{\\"model\\": \\"x\\"}","model":"inner"}],'
        b'"a\\"model": "q", "meta": {"model": "nested"}, "model" : "chat"}'
    )
    out = splice_model(body, "served")
    assert out == body.replace(b'"model" : "chat"', b'"model" : "served"')


def test_duplicates_are_all_rewritten_unless_one_is_no_string() -> None:
    out = splice_model(b'{"model":"a","x":[1,{"model":"k"}],"model":"b"}', "s")
    assert out == b'{"model":"s","x":[1,{"model":"k"}],"model":"s"}'
    assert splice_model(b'{"model":1,"model":"b"}', "s") is None


def test_escaped_key_is_re_encoded() -> None:
    body = b'{"mod\\u0065l": "alias", "messages": []}'
    assert splice_model(body, "s") is None
    data = orjson.loads(body)
    assert orjson.loads(with_model(body, data, "s", reencode=False)) == {
        "model": "s",
        "messages": [],
    }


def test_deep_bodies_are_spliced_not_re_encoded() -> None:
    deep = b'{"x":[' * 450 + b"1" + b"]}" * 450  # 900 levels: orjson reads it, cannot write it
    body = b'{"messages":[{"role":"user","content":"hi"}],"extra":' + deep + b',"model":"a"}'
    data = orjson.loads(body)
    out = with_model(body, data, "served", reencode=False)
    assert out == body.replace(b'"model":"a"', b'"model":"served"')
    assert data["model"] == "served"


@pytest.mark.parametrize("depth", [MAX_ENCODE_DEPTH, MAX_ENCODE_DEPTH + 1, 1000])
def test_re_encoding_refuses_what_it_cannot_write_with_a_400(depth: int) -> None:
    data = orjson.loads(b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1))
    if depth <= MAX_ENCODE_DEPTH:
        assert orjson.loads(encode(data)) == data
        return
    with pytest.raises(GatewayError) as err:
        encode(data)
    assert err.value.status == 400 and err.value.type == "invalid_request_error"
    assert err.value.code == "body_too_deep" and str(MAX_ENCODE_DEPTH) in err.value.message


def test_a_resolved_prompt_too_deep_to_encode_is_a_400() -> None:
    """Prompt resolution rewrites the body, so it is encoded again: past the limit, a 400."""
    from pathlib import Path

    from gateway import GatewayConfig
    from gateway._plugins import default_plugins
    from tests.fakes.openai_upstream import FakeUpstream
    from tests.fakes.servers import GatewayServer

    repo = Path(__file__).resolve().parents[2]
    up = FakeUpstream(name="p").start()
    cfg = GatewayConfig(
        auth={"enabled": False},
        models=[{"name": "chat", "upstreams": [{"url": up.url}]}],
        prompts={"repo": str(repo), "dir": "prompts", "ref": None, "reload_interval_s": 0},
    )
    gw = GatewayServer(cfg, default_plugins(cfg)).start()
    try:
        head = (
            b'{"model":"chat","messages":[],"prompt":{"id":"summarise","variables":{"text":"hi"}}'
        )
        for depth, status in ((MAX_ENCODE_DEPTH - 1, 200), (900, 400)):
            deep = b'{"x":' * depth + b"1" + b"}" * depth
            r = httpx.post(
                gw.url + "/v1/chat/completions",
                content=head + b',"extra":' + deep + b"}",
                headers={"content-type": "application/json"},
            )
            assert r.status_code == status, r.text[:300]
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "body_too_deep"
        assert str(MAX_ENCODE_DEPTH) in err["message"]
    finally:
        gw.stop()
        up.stop()
