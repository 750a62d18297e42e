"""`llmops promote` against the real gateway app and fake upstreams: the offline gate first,
then steps held on the gateway's guard, and a rollback by the guard that ends it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from evals import ModelGateRecord, write_model_gate
from llmops.cli import app
from rollout import PromotionError, VariantAdmin, promote, step_weights
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.variants._support import ADMIN, KEY, MSG, config_dict, start_gateway, write_config


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def gw(tmp_path: Path) -> Iterator[tuple[GatewayServer, FakeUpstream]]:
    a, b = FakeUpstream(name="v1").start(), FakeUpstream(name="v2").start()
    cfg = config_dict(a.url, b.url, tmp_path)
    cfg["models"][2]["variants"] = [{"model": "v1", "weight": 100}, {"model": "v2", "weight": 0}]
    g = start_gateway(write_config(tmp_path / "gateway.yaml", cfg))
    yield g, b
    g.stop()
    a.stop()
    b.stop()


class _Traffic:
    """Clients calling the alias in a loop, counting failures, until stopped."""

    def __init__(self, gw: GatewayServer) -> None:
        self.client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
        self.ok = self.failed = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self.client.chat.completions.create(model="chat", messages=MSG, user=f"u{i % 97}")
                self.ok += 1
            except openai.APIStatusError:
                self.failed += 1
            time.sleep(0.005)

    def __enter__(self) -> _Traffic:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(5)


def _record(passed: bool) -> ModelGateRecord:
    return ModelGateRecord(base_model="v1", head_model="v2", passed=passed,
                           exit_code=0 if passed else 1, commit="abc123", suites=[])  # fmt: skip


def test_step_weights_share_the_rest_in_proportion() -> None:
    st = {"baseline": "v1", "variants": [{"model": "v1", "weight": 90},
          {"model": "v2", "weight": 5}, {"model": "v3", "weight": 10}]}  # fmt: skip
    assert step_weights(st, "v2", 50) == {"v1": 45.0, "v3": 5.0, "v2": 50}
    st0 = {"baseline": "v1", "variants": [{"model": "v1", "weight": 0},
           {"model": "v2", "weight": 100}]}  # fmt: skip
    assert step_weights(st0, "v2", 25) == {"v1": 75.0, "v2": 25}


def test_promotion_needs_a_passed_offline_gate(
    gw: tuple[GatewayServer, FakeUpstream], home: Path
) -> None:
    g, _ = gw
    admin = VariantAdmin(g.url, ADMIN)
    with pytest.raises(PromotionError, match="no offline gate record"):
        promote(admin, "chat", "v2", [50], 0.1, poll_s=0.05)
    write_model_gate(_record(False))
    with pytest.raises(PromotionError, match="did not pass"):
        promote(admin, "chat", "v2", [50], 0.1, poll_s=0.05)
    with pytest.raises(PromotionError, match="not a variant"):
        promote(admin, "chat", "v7", [50], 0.1, poll_s=0.05)
    with pytest.raises(PromotionError, match="increasing"):
        promote(admin, "chat", "v2", [50, 25], 0.1, poll_s=0.05)
    st = admin.status("chat")
    assert [v["weight"] for v in st["variants"]] == [100, 0]  # nothing moved


def test_promotion_steps_through_to_100(gw: tuple[GatewayServer, FakeUpstream], home: Path) -> None:
    g, _ = gw
    write_model_gate(_record(True))
    admin = VariantAdmin(g.url, ADMIN)
    said: list[str] = []
    with _Traffic(g) as traffic:
        done = promote(admin, "chat", "v2", [25, 50, 100], 0.5, poll_s=0.1, say=said.append)
    assert [s.weight for s in done] == [25, 50, 100]
    assert all(s.guard and s.guard["status"] == "ok" for s in done)
    assert [v["weight"] for v in admin.status("chat")["variants"]] == [0, 100]
    assert traffic.failed == 0
    assert "commit abc123" in said[0]


def test_a_fault_at_50_percent_is_rolled_back_by_the_gateway(
    gw: tuple[GatewayServer, FakeUpstream], home: Path
) -> None:
    g, v2 = gw
    write_model_gate(_record(True))
    admin = VariantAdmin(g.url, ADMIN)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            promote(admin, "chat", "v2", [50, 100], 30, poll_s=0.1, say=lambda _: None)
        except PromotionError as e:
            errors.append(e)

    with _Traffic(g) as traffic:
        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = admin.status("chat")
            if st["variants"][1]["weight"] == 50:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        v2.mode = "error500"
        t.join(20)
        failed_at_rollback = traffic.failed
        time.sleep(1.0)
    assert errors and "rolled v2 back at 50%" in str(errors[0])
    assert [v["weight"] for v in admin.status("chat")["variants"]] == [50, 0]
    assert traffic.failed == failed_at_rollback, "no failure after the rollback"
    assert traffic.failed > 0


def test_the_cli_says_why_it_will_not_start(
    gw: tuple[GatewayServer, FakeUpstream], home: Path
) -> None:
    g, _ = gw
    r = CliRunner().invoke(app, ["promote", "chat", "--to", "v2", "--gateway", g.url,
                                 "--admin-key", ADMIN, "--hold", "1s"])  # fmt: skip
    assert r.exit_code == 1
    assert "no offline gate record for v2 against v1" in r.output
    r = CliRunner().invoke(app, ["promote", "chat", "--to", "v2", "--gateway", g.url,
                                 "--admin-key", "wrong"])  # fmt: skip
    assert r.exit_code == 1 and "401" in r.output
