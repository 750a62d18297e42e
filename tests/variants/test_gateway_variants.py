"""Variants through the real gateway app, the official SDK as the client, and fake upstreams
(stand-ins for vLLM: the engine tests run the same on real engines)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from rollout import ab_report, read_records, samples_by_variant
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.variants._support import (
    ADMIN,
    ALIAS_ONLY_KEY,
    KEY,
    MSG,
    admin_status,
    config_dict,
    start_gateway,
    wait_for,
    weight,
    write_config,
)


@pytest.fixture()
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    a, b = FakeUpstream(name="v1").start(), FakeUpstream(name="v2").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture()
def setup(
    ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> Iterator[tuple[GatewayServer, Path]]:
    a, b = ups
    path = write_config(tmp_path / "gateway.yaml", config_dict(a.url, b.url, tmp_path),
                        "# the canary of chat: keep this comment\n")  # fmt: skip
    gw = start_gateway(path)
    yield gw, path
    gw.stop()


def _client(gw: GatewayServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def _served(c: openai.OpenAI, **kw: object) -> str:
    r = c.chat.completions.with_raw_response.create(model="chat", messages=MSG, **kw)  # type: ignore[call-overload]
    return str(r.headers["x-llmops-variant"])


def test_users_stick_and_the_split_follows_the_weights(
    setup: tuple[GatewayServer, Path], ups: tuple[FakeUpstream, FakeUpstream]
) -> None:
    gw, _ = setup
    c = _client(gw)
    first = {f"user-{i}": _served(c, user=f"user-{i}") for i in range(60)}
    assert set(first.values()) == {"v1", "v2"}
    for u, v in list(first.items())[:15]:
        assert _served(c, user=u) == v
        assert _served(c, extra_headers={"x-session-id": u}) == v  # the session key too
    # The upstream got the variant's own served name, not the alias.
    a, b = ups
    assert {r["model"] for r in a.requests} == {"served-v1"}
    assert {r["model"] for r in b.requests} == {"served-v2"}
    assert gw.metric_value("llmops_variant_requests_total", alias="chat", variant="v2") > 0
    assert gw.metric_value("llmops_variant_weight", alias="chat", variant="v1") == 50
    # Unkeyed requests are split too.
    seen = Counter(_served(c) for _ in range(40))
    assert seen["v1"] > 0 and seen["v2"] > 0


def test_streams_are_served_and_timed_by_variant(setup: tuple[GatewayServer, Path]) -> None:
    gw, _ = setup
    c = _client(gw)
    with c.chat.completions.with_streaming_response.create(
        model="chat", messages=MSG, stream=True, extra_headers={"x-llmops-variant": "v2"}
    ) as r:
        assert r.headers["x-llmops-variant"] == "v2"
        assert "".join(r.iter_lines())
    assert gw.metric_value("llmops_variant_time_to_first_token_seconds_count", variant="v2") >= 1


def test_the_variant_header_forces_a_variant_only_for_keys_allowed_every_variant(
    setup: tuple[GatewayServer, Path],
) -> None:
    gw, _ = setup
    c = _client(gw)
    assert {_served(c, extra_headers={"x-llmops-variant": "v2"}) for _ in range(10)} == {"v2"}
    with pytest.raises(openai.PermissionDeniedError) as e:
        _client(gw, ALIAS_ONLY_KEY).chat.completions.create(
            model="chat", messages=MSG, extra_headers={"x-llmops-variant": "v2"}
        )
    assert e.value.code == "variant_override_not_allowed"
    with pytest.raises(openai.BadRequestError) as e2:
        c.chat.completions.create(
            model="chat", messages=MSG, extra_headers={"x-llmops-variant": "v9"}
        )
    assert e2.value.code == "invalid_variant"
    # The alias-only key is served normally without the header.
    assert _served(_client(gw, ALIAS_ONLY_KEY)) in {"v1", "v2"}


def test_bad_weight_changes_are_refused_and_change_nothing(
    setup: tuple[GatewayServer, Path],
) -> None:
    gw, path = setup
    before = admin_status(gw)
    text = path.read_text()
    h = {"authorization": f"Bearer {ADMIN}"}
    for body, code in [
        ({"weights": {"v1": 0, "v2": 0}}, "invalid_weights"),
        ({"weights": {"nope": 10}}, "invalid_weights"),
        ({"weights": {"v2": -5}}, "invalid_weights"),
        ({"weights": {"v2": "lots"}}, "invalid_weights"),
        ({"weights": {}}, "invalid_weights"),
        ({"nope": 1}, "invalid_weights"),
    ]:
        r = httpx.put(gw.url + "/admin/variants/chat", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == code
    assert httpx.put(gw.url + "/admin/variants/chat", json={"weights": {"v2": 1}},
                     headers={"authorization": f"Bearer {KEY}"}).status_code == 401  # fmt: skip
    r = httpx.put(gw.url + "/admin/variants/nope", json={"weights": {"v2": 1}}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert [v["weight"] for v in admin_status(gw)["variants"]] == [
        v["weight"] for v in before["variants"]
    ]
    assert path.read_text() == text


def test_weight_changes_apply_at_once_and_are_written_back_keeping_comments(
    setup: tuple[GatewayServer, Path],
) -> None:
    gw, path = setup
    r = httpx.put(gw.url + "/admin/variants/chat", json={"weights": {"v1": 0, "v2": 100}},
                  headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
    assert r.status_code == 200, r.text
    c = _client(gw)
    assert {_served(c, user=f"u{i}") for i in range(20)} == {"v2"}
    text = path.read_text()
    assert text.startswith("# the canary of chat: keep this comment")
    import yaml

    chat = next(m for m in yaml.safe_load(text)["models"] if m["name"] == "chat")
    assert [v["weight"] for v in chat["variants"]] == [0, 100]


def test_the_guard_rolls_a_failing_variant_back_and_a_restart_keeps_it(
    setup: tuple[GatewayServer, Path], ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    gw, path = setup
    c = _client(gw)
    for i in range(30):
        _served(c, user=f"warm-{i}")
    _, b = ups
    b.mode = "error500"  # the fault: every v2 request fails
    t_fault = time.monotonic()
    failed = 0

    def rolled_back() -> bool:
        nonlocal failed
        try:
            c.chat.completions.create(model="chat", messages=MSG)
        except openai.InternalServerError:
            failed += 1
        return weight(gw, "v2") == 0

    took = wait_for(rolled_back, timeout=15, step=0.02)
    window = 3.0
    assert took <= 2 * window, f"rollback took {took:.2f}s, more than two guard windows"
    st = admin_status(gw)
    v2 = next(v for v in st["variants"] if v["model"] == "v2")
    assert v2["rolled_back"]["reason"] == "error_rate"
    assert st["updated_by"] == "guard"
    assert gw.metric_value("llmops_variant_guard_breaches_total", variant="v2",
                           reason="error_rate") == 1  # fmt: skip
    assert gw.metric_value("llmops_variant_rolled_back", variant="v2") == 1
    # After the rollback every request is served, by v1.
    assert {_served(c) for _ in range(20)} == {"v1"}
    assert failed > 0 and time.monotonic() - t_fault < 15
    gw.stop()
    # A restart must not revert the rollback: the state file and the written-back config agree.
    gw2 = start_gateway(path)
    try:
        assert weight(gw2, "v2") == 0
        assert {_served(_client(gw2)) for _ in range(10)} == {"v1"}
    finally:
        gw2.stop()


def test_a_restart_keeps_a_rollback_even_when_the_config_cannot_be_written(
    ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    a, b = ups
    cfg = config_dict(a.url, b.url, tmp_path, variants={"write_back": False})
    path = write_config(tmp_path / "gateway.yaml", cfg)
    gw = start_gateway(path)
    try:
        b.mode = "error500"
        c = _client(gw)

        def rolled_back() -> bool:
            try:
                c.chat.completions.create(model="chat", messages=MSG)
            except openai.InternalServerError:
                pass
            return weight(gw, "v2") == 0

        wait_for(rolled_back, timeout=15, step=0.02)
    finally:
        gw.stop()
    assert "weight: 50" in path.read_text()  # the config was left alone
    gw2 = start_gateway(path)
    try:
        assert weight(gw2, "v2") == 0  # the state store wins over the unchanged config
    finally:
        gw2.stop()
    # A deliberate change of the config's weights wins over the stored state.
    cfg["models"][2]["variants"][1]["weight"] = 10
    write_config(path, cfg)
    gw3 = start_gateway(path)
    try:
        assert weight(gw3, "v2") == 10
    finally:
        gw3.stop()


def test_requests_and_feedback_reach_the_ab_report(setup: tuple[GatewayServer, Path],
                                                   tmp_path: Path) -> None:  # fmt: skip
    gw, _ = setup
    c = _client(gw)
    ids = []
    for i in range(40):
        r = c.chat.completions.with_raw_response.create(model="chat", messages=MSG, user=f"u{i}")
        ids.append((r.headers["x-request-id"], r.headers["x-llmops-variant"]))
    for rid, variant in ids:
        fb = httpx.post(gw.url + "/v1/feedback", json={"request_id": rid,
                        "score": 1 if variant == "v1" else 0},
                        headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
        assert fb.status_code == 200, fb.text
    events = tmp_path / "variant-events.jsonl"
    wait_for(lambda: events.exists() and events.read_text().count('"feedback"') == 40, 10)
    samples = samples_by_variant(read_records([events]), "chat")
    assert sum(s.requests for s in samples.values()) == 40
    rep = ab_report("chat", "v1", samples)
    (cand,) = rep.candidates
    fb_row = next(r for r in cand.rows if r.metric.startswith("feedback"))
    assert fb_row.delta == -1.0 and fb_row.reading == "worse"
    assert cand.recommendation == "roll back"
    json.dumps(rep.as_dict())  # the --json output serialises
