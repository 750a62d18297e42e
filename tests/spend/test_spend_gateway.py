"""Spend on the request path: the official openai SDK against the gateway, fake upstreams
(they answer fixed usage: 7 prompt and 5 completion tokens, streams 7 + one per chunk).

Token-priced requests are charged from usage, streams without usage from the tokens relayed,
money budgets refuse with OpenAI's insufficient_quota once spent, and the ledger answers
``GET /admin/spend`` and ``llmops spend report``. Infra-cost allocation is checked on the real
engine (tests/engine/test_spend_engine.py) and in bench/spend_overhead.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from llmops.cli import app
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer

KEY, TEAM_KEY, ADMIN = "sk-spend-a", "sk-spend-b", "sk-spend-admin"
MSG = [{"role": "user", "content": "hi"}]
IN, OUT = 1000.0, 2000.0  # USD per 1M tokens: 7 in + 5 out = $0.017 a request
PER_REQUEST = (7 * IN + 5 * OUT) / 1e6


def _config(url: str, **limits: Any) -> GatewayConfig:
    return GatewayConfig(
        auth={"admin_sha256": hash_key(ADMIN), "keys": [
            {"name": "alice", "sha256": hash_key(KEY), "team": "ml"},
            {"name": "bob", "sha256": hash_key(TEAM_KEY), "team": "ml",
             "limits": {"budget_usd": 0.1, "budget_period": "day"}},
        ]},
        models=[
            {"name": "priced", "upstreams": [{"url": url}],
             "price": {"input_per_1m": IN, "output_per_1m": OUT}},
            {"name": "free", "upstreams": [{"url": url}]},
        ],
        limits={"teams": {"ml": {"budget_usd": 5, "budget_period": "month"}}, **limits},
    )  # fmt: skip


@pytest.fixture()
def gw() -> Iterator[tuple[GatewayServer, FakeUpstream]]:
    up = FakeUpstream(name="up").start()
    cfg = _config(up.url)
    g = GatewayServer(cfg, default_plugins(cfg)).start()
    yield g, up
    g.stop()
    up.stop()


def _admin(g: GatewayServer, **params: str) -> dict[str, Any]:
    r = httpx.get(g.url + "/admin/spend", params=params,
                  headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _by(rep: dict[str, Any], by: str) -> dict[str, dict[str, Any]]:
    return {row[by]: row for row in rep["data"]}


def test_requests_are_charged_from_usage_and_reported(
    gw: tuple[GatewayServer, FakeUpstream],
) -> None:
    g, _ = gw
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=KEY, max_retries=0)
    for _ in range(4):
        c.chat.completions.create(model="priced", messages=MSG)
    c.chat.completions.create(model="free", messages=MSG)  # unpriced: not accounted
    stream = c.chat.completions.create(model="priced", messages=MSG, stream=True,
                                       stream_options={"include_usage": True})  # fmt: skip
    assert len(list(stream)) > 1  # usage 7 + 5 (one per chunk): charged as usual

    time.sleep(0.05)
    assert g.metric_value("llmops_spend_usd_total", key="alice", team="ml",
                          model="priced") == pytest.approx(5 * PER_REQUEST)  # fmt: skip
    assert g.metric_value("llmops_spend_estimated_total") == 0
    by_key = _by(_admin(g, by="key", since="1h"), "key")
    assert by_key["alice"]["usd"] == pytest.approx(5 * PER_REQUEST)
    assert by_key["alice"]["requests"] == 5 and by_key["alice"]["completion_tokens"] == 25
    assert by_key["alice"]["estimated"] == 0
    assert set(_by(_admin(g, by="model"), "model")) == {"priced"}
    assert _by(_admin(g, by="team"), "team")["ml"]["prompt_tokens"] == 35

    r = CliRunner().invoke(app, ["spend", "report", "--by", "key", "--since", "1h",
                                 "--gateway", g.url, "--admin-key", ADMIN, "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total_usd"] == pytest.approx(5 * PER_REQUEST)
    table = CliRunner().invoke(app, ["spend", "report", "--by", "team", "--gateway", g.url,
                                     "--admin-key", ADMIN], env={"COLUMNS": "200"})  # fmt: skip
    assert table.exit_code == 0 and "ml" in table.stdout and "0.0850" in table.stdout


def test_streams_without_usage_are_charged_from_what_was_relayed(
    gw: tuple[GatewayServer, FakeUpstream],
) -> None:
    g, up = gw
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=KEY, max_retries=0)
    up.stream_chunks = 6
    assert len(list(c.chat.completions.create(model="priced", messages=MSG, stream=True))) == 6
    up.mode = "truncate"  # two chunks, then the connection drops
    with pytest.raises(openai.APIError):
        list(c.chat.completions.create(model="priced", messages=MSG, stream=True))
    time.sleep(0.05)
    assert g.metric_value("llmops_spend_estimated_total", model="priced", basis="relayed") == 2
    row = _by(_admin(g, by="key"), "key")["alice"]
    assert row["requests"] == 2 and row["estimated"] == 2
    # Relayed: six chunks, the first taken for the role chunk a real engine sends; then two.
    assert row["completion_tokens"] == 5 + 1


def test_a_money_budget_refuses_once_spent(gw: tuple[GatewayServer, FakeUpstream]) -> None:
    g, up = gw
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=TEAM_KEY, max_retries=0)
    ok = 0
    with pytest.raises(openai.RateLimitError) as e:
        for _ in range(20):
            c.chat.completions.create(model="priced", messages=MSG, max_tokens=5)
            ok += 1
    err = e.value.body
    assert isinstance(err, dict) and err["code"] == "insufficient_quota", err
    assert "Spend budget reached for key 'bob': $0.10 per day" in err["message"]
    # Reserved from the estimate (body bytes / 4 + max_tokens), reconciled to $0.017 each:
    # admitted while spent + the next estimate fit the budget; never more than the budget.
    est = (len(b'{"messages":[{"role":"user","content":"hi"}],"model":"priced","max_tokens":5}')
           // 4 + 1) * IN / 1e6 + 5 * OUT / 1e6  # fmt: skip
    assert ok * PER_REQUEST <= 0.1
    assert ok * PER_REQUEST + est > 0.1 - PER_REQUEST, ok
    assert len(up.requests) == ok
    # The unpriced model costs nothing, so the budget does not hold it back.
    c.chat.completions.create(model="free", messages=MSG)
    metrics = g.metrics()
    assert 'llmops_budget_used_ratio{name="bob",period="day",scope="key",unit="usd"}' in metrics


def test_bad_report_queries_are_openai_errors(gw: tuple[GatewayServer, FakeUpstream]) -> None:
    g, _ = gw
    h = {"authorization": f"Bearer {ADMIN}"}
    r = httpx.get(g.url + "/admin/spend", params={"by": "colour"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "by"
    r = httpx.get(g.url + "/admin/spend", params={"since": "soon"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "since"
    r = httpx.get(g.url + "/admin/spend", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_key"
    r = CliRunner().invoke(app, ["spend", "report", "--gateway", g.url])
    assert r.exit_code == 2 and "admin key" in r.stderr
