"""Two priced variants behind one alias: each request's cost reaches the variants' event log,
the spend ledger's variant rows, and the A/B report's cost per request (fake upstreams)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from gateway import load_config
from gateway._plugins import default_plugins
from rollout import ab_report, read_records, samples_by_variant
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.variants._support import ADMIN, KEY, MSG, config_dict, wait_for, write_config


def test_a_cheaper_variant_shows_in_the_ab_report(tmp_path: Path) -> None:
    a, b = FakeUpstream(name="v1").start(), FakeUpstream(name="v2").start()
    cfg = config_dict(a.url, b.url, tmp_path)
    cfg["models"][0]["price"] = {"input_per_1m": 10.0, "output_per_1m": 30.0}
    cfg["models"][1]["price"] = {"input_per_1m": 1.0, "output_per_1m": 3.0}
    cfg["limits"] = {"enabled": True}
    gw_cfg = load_config(write_config(tmp_path / "gateway.yaml", cfg))
    g = GatewayServer(gw_cfg, default_plugins(gw_cfg)).start()
    try:
        c = openai.OpenAI(base_url=g.url + "/v1", api_key=KEY, max_retries=0)
        for i in range(30):
            c.chat.completions.create(model="chat", messages=MSG, user=f"u{i}")
        events = tmp_path / "variant-events.jsonl"
        wait_for(lambda: events.exists() and events.read_text().count('"request"') == 30, 10)
        samples = samples_by_variant(read_records([events]), "chat")
        rep = ab_report("chat", "v1", samples)
        cost = {v.variant: v.cost_per_request_usd for v in rep.variants}
        assert cost["v1"] == pytest.approx((7 * 10.0 + 5 * 30.0) / 1e6)
        assert cost["v2"] == pytest.approx((7 * 1.0 + 5 * 3.0) / 1e6)
        row = next(r for r in rep.candidates[0].rows if r.metric == "cost per request (USD)")
        assert row.delta is not None and row.delta < 0  # v2 is cheaper
        time.sleep(0.05)
        r = httpx.get(g.url + "/admin/spend", params={"by": "variant"},
                      headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
        rows = {x["variant"]: x for x in r.json()["data"]}
        assert set(rows) == {"chat/v1", "chat/v2"}
        assert sum(x["requests"] for x in rows.values()) == 30
    finally:
        g.stop()
        a.stop()
        b.stop()
