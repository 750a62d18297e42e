"""Bad input and refused access: OpenAI-shaped errors with the right status, never a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, LIMITED_KEY

AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def _assert_error_shape(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    return err


def test_missing_and_unknown_key(gateway: GatewayServer) -> None:
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "chat", "messages": []})
    _assert_error_shape(r, 401, "missing_api_key")
    r = httpx.get(gateway.url + "/v1/models")
    _assert_error_shape(r, 401)


def test_model_not_allowed_for_key(gateway: GatewayServer) -> None:
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=LIMITED_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_allowed"
    assert c.embeddings.create(model="emb", input="ok").data


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    assert e.value.param == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "chat"}, "messages"),
        ({"model": "chat", "messages": "hello"}, "messages"),
        ({"model": 7, "messages": []}, "model"),
        ({"model": "chat", "messages": [], "stream": "yes"}, "stream"),
    ],
)
def test_invalid_fields_name_the_field(gateway: GatewayServer, body: dict, param: str) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH)
    err = _assert_error_shape(r, 400)
    assert err["param"] == param
    assert param in err["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b'"str"', b"\xff\xfe"])
def test_malformed_json(gateway: GatewayServer, raw: bytes) -> None:
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=raw,
        headers={**AUTH, "content-type": "application/json"},
    )
    _assert_error_shape(r, 400)


def test_body_too_large(gateway: GatewayServer) -> None:
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 100_000}]}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=big, headers=AUTH)
    _assert_error_shape(r, 413, "request_too_large")

    def chunks():  # no Content-Length: the limit still holds while streaming the body
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(gateway.url + "/v1/chat/completions", content=chunks(), headers=AUTH)
    _assert_error_shape(r, 413, "request_too_large")


@pytest.mark.parametrize(
    "path",
    ["/v1/load_lora_adapter", "/tokenize", "/reset_prefix_cache", "/collective_rpc", "/sleep"],
)
def test_vllm_dev_endpoints_not_exposed(gateway: GatewayServer, path: str) -> None:
    r = httpx.post(gateway.url + path, json={}, headers=AUTH)
    _assert_error_shape(r, 404, "unknown_url")


def test_wrong_method(gateway: GatewayServer) -> None:
    r = httpx.get(gateway.url + "/v1/chat/completions", headers=AUTH)
    _assert_error_shape(r, 405)
