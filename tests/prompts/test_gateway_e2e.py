"""Prompts through the real gateway over HTTP with the official ``openai`` SDK (``extra_body``).

The upstream is the fake OpenAI server from ``tests/fakes`` (no model runs here); it records the
bodies the gateway forwards, so the tests see exactly what a vLLM replica would receive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway._prompt_resolution import prompt_plugin
from prompts import RegistryReloader
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config

from .conftest import Repo

GREET = """\
name: greet
description: greets
model: chat
params: {temperature: 0.3, max_tokens: 17}
variables:
  who: {type: string, max_length: 100}
messages:
  - role: system
    content: "You greet people. {{ tag }}"
  - role: user
    content: "Greet {{ who }}."
"""
BROKEN = "name: greet\nmessages: [{role: user, content: '{{ who '}]\n"
EVIL = """\
name: evil
variables: {v: {}}
messages: [{role: user, content: "{{ cycler.__init__.__globals__ }}"}]
"""


def greet(tag: str) -> str:
    return GREET.replace("{{ tag }}", tag)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    u = FakeUpstream(name="up").start()
    yield u
    u.stop()


@pytest.fixture()
def prompt_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    r = Repo(tmp_path_factory.mktemp("e2e") / "repo")
    r.write("prompts/greet.yaml", greet("v1"))
    r.write("prompts/evil.yaml", EVIL)
    r.commit("v1")
    return r


@pytest.fixture()
def gateway(upstream: FakeUpstream, prompt_repo: Repo) -> Iterator[tuple[GatewayServer, Any]]:
    reloader = RegistryReloader.for_git(prompt_repo.path, interval=0.05)
    gw = GatewayServer(make_config([upstream.url]), [prompt_plugin(reloader)]).start()
    upstream.requests.clear()
    yield gw, reloader
    gw.stop()


def client(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


def ref(**variables: Any) -> dict[str, Any]:
    return {"prompt": {"id": "greet", "variables": variables}}


def test_sdk_extra_body_renders_and_sets_headers(
    gateway: tuple[GatewayServer, Any], upstream: FakeUpstream
) -> None:
    gw, reloader = gateway
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "Be brief."}],
        temperature=0.9,
        extra_body=ref(who="Zoë 🚀"),
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "[up] echo: Be brief."
    version = reloader.registry.get("greet").version
    assert raw.headers["x-prompt-name"] == "greet"
    assert raw.headers["x-prompt-version"] == version
    sent = upstream.requests[-1]
    assert "prompt" not in sent
    assert sent["messages"] == [
        {"role": "system", "content": "You greet people. v1"},
        {"role": "user", "content": "Greet Zoë 🚀."},
        {"role": "user", "content": "Be brief."},
    ]
    assert sent["temperature"] == 0.9 and sent["max_tokens"] == 17
    # an empty model takes the template's (SDK users must pass something)
    c.chat.completions.create(model="", messages=[], extra_body=ref(who="x"))
    assert upstream.requests[-1]["model"] == "served-chat"


def test_sdk_completions_with_prompt_object(
    gateway: tuple[GatewayServer, Any], upstream: FakeUpstream
) -> None:
    gw, _ = gateway
    raw = client(gw).completions.with_raw_response.create(
        model="chat", prompt="", extra_body=ref(who="Ann")
    )
    assert raw.headers["x-prompt-name"] == "greet"
    assert upstream.requests[-1]["prompt"] == "You greet people. v1\n\nGreet Ann."


def test_errors_are_openai_shaped(gateway: tuple[GatewayServer, Any]) -> None:
    gw, _ = gateway
    c = client(gw)
    with pytest.raises(openai.NotFoundError) as nf:
        c.chat.completions.create(model="chat", messages=[], extra_body={"prompt": {"id": "no"}})
    assert nf.value.code == "prompt_not_found" and nf.value.param == "prompt.id"
    with pytest.raises(openai.BadRequestError) as br:
        c.chat.completions.create(model="chat", messages=[], extra_body=ref(whom="x"))
    assert br.value.code == "invalid_prompt_variables"
    assert "who" in br.value.message and "whom" in br.value.message
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="chat", messages=[], extra_body=ref(who=3))
    with pytest.raises(openai.UnprocessableEntityError) as ue:
        c.chat.completions.create(
            model="chat",
            messages=[],
            extra_body={"prompt": {"id": "evil", "variables": {"v": "x"}}},
        )
    assert ue.value.status_code == 422 and ue.value.code == "prompt_render_error"


def test_canary_split_sticky_per_user_over_http(
    gateway: tuple[GatewayServer, Any], prompt_repo: Repo
) -> None:
    gw, reloader = gateway
    old = reloader.registry.get("greet").version
    prompt_repo.write("prompts/greet.yaml", greet("v2"))
    prompt_repo.write(
        "prompts/labels.yaml", f"labels:\n  canary: {{greet: {{version: {old}, weight: 0.5}}}}\n"
    )
    prompt_repo.commit("v2 with v1 as a 50% canary")
    deadline = time.monotonic() + 20
    while reloader.status().generation < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    c = client(gw)
    arms = []
    for i in range(300):
        raw = c.chat.completions.with_raw_response.create(
            model="chat", messages=[], user=f"user-{i}", extra_body=ref(who="a")
        )
        arms.append(raw.headers["x-prompt-version"])
    share = arms.count(old) / len(arms)
    assert 0.4 < share < 0.6, share
    for i in range(30):  # sticky
        raw = c.chat.completions.with_raw_response.create(
            model="chat", messages=[], user=f"user-{i}", extra_body=ref(who="a")
        )
        assert raw.headers["x-prompt-version"] == arms[i]


def test_reload_under_concurrent_requests_loses_none(
    gateway: tuple[GatewayServer, Any], prompt_repo: Repo
) -> None:
    gw, reloader = gateway
    c = client(gw)
    stop = threading.Event()
    ok: list[str] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                raw = c.chat.completions.with_raw_response.create(
                    model="chat", messages=[], extra_body=ref(who="a")
                )
                ok.append(raw.headers["x-prompt-version"])
            except BaseException as e:  # collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for n in range(2, 6):
            prompt_repo.write("prompts/greet.yaml", BROKEN if n == 4 else greet(f"v{n}"))
            prompt_repo.commit(f"c{n}")
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert len(ok) > 20 and len(set(ok)) >= 2
    st = reloader.status()
    assert st.errors_total >= 1 and st.ok  # the broken commit was skipped, then fixed
    ready = httpx.get(gw.url + "/readyz").json()
    assert ready["prompts"]["loaded"] is True and ready["prompts"]["errors_total"] >= 1
    assert gw.metric_value("llmops_prompt_reload_errors_total") >= 1
    assert gw.metric_value("llmops_prompts") == 2


def test_not_ready_until_prompts_load(upstream: FakeUpstream, tmp_path: Any) -> None:
    r = Repo(tmp_path / "bad")
    r.write("prompts/greet.yaml", BROKEN)
    r.commit("broken")
    reloader = RegistryReloader.for_git(r.path, interval=60)
    gw = GatewayServer(make_config([upstream.url]), [prompt_plugin(reloader)]).start()
    try:
        resp = httpx.get(gw.url + "/readyz")
        assert resp.status_code == 503
        assert resp.json()["prompts"]["loaded"] is False
        with pytest.raises(openai.InternalServerError) as ei:
            client(gw).chat.completions.create(model="chat", messages=[], extra_body=ref(who="a"))
        assert ei.value.status_code == 503
        # requests without a prompt are unaffected
        client(gw).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    finally:
        gw.stop()
