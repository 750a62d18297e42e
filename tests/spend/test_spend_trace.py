"""A priced request's cost reaches its Langfuse generation as cost details (USD), spans kept
in memory (no Langfuse server runs here); the price comes from the ``spend.prices`` table."""

from __future__ import annotations

import json

import openai
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway._app import GatewayApp
from gateway._observability import observability_plugin
from gateway.spend import spend_plugin
from observability import trace_id_for
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config
from tests.observability.conftest import obs_config


def test_the_generation_carries_the_cost() -> None:
    up = FakeUpstream(name="a").start()
    exporter = InMemorySpanExporter()

    def tracing(gw: GatewayApp) -> None:
        observability_plugin(gw, span_exporter=exporter)

    cfg = make_config(
        [up.url],
        observability=obs_config(),
        spend={"prices": {"chat": {"input_per_1m": 3.0, "output_per_1m": 15.0}}},
    )
    gw = GatewayServer(cfg, [spend_plugin, tracing]).start()
    try:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        c.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": "req-cost-1"},
        )
        gw.gw.observability.flush()
        tid = trace_id_for("req-cost-1")
        (gen,) = [
            s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == tid
        ]
        cost = json.loads(dict(gen.attributes)["langfuse.observation.cost_details"])
        assert cost == {
            "input": 7 * 3.0 / 1e6,
            "output": 5 * 15.0 / 1e6,
            "total": 7 * 3.0 / 1e6 + 5 * 15.0 / 1e6,
        }
    finally:
        gw.stop()
        up.stop()
