"""``llmops retrieval rebuild`` while a gateway serves the embedded store (which only the
gateway's process may open): the gateway builds ``kb@v2`` itself over its admin API, the CLI
scores both versions through the vector store search endpoint, the alias switches, and
searches through the official SDK keep succeeding all along. Then the admin API on its own: a
file attached while a version is built is caught up at the switch, and the refusals.
Real HTTP, the real embedding model and embedded Qdrant engine."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from retrieval import RetrievalConfig, Retriever, switch_alias
from tests.fakes.servers import GatewayServer

from .conftest import FIXTURES
from .test_tune import _judged

KEY, ADMIN = "sk-rebuild", "sk-rebuild-admin"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    from common import announce_gateway, withdraw_gateway

    home = tmp_path_factory.mktemp("home")
    docs = home / "docs"
    shutil.copytree(FIXTURES / "pydocs" / "library", docs)
    rcfg = RetrievalConfig(home=home)
    r = Retriever(rcfg)
    r.ingest([str(docs)], "kb@v1")  # ingested by the CLI before the gateway started
    switch_alias(r.store, "kb", "kb@v1")
    r.close()
    cfg = GatewayConfig(
        auth={"enabled": True, "admin_sha256": hash_key(ADMIN),
              "keys": [{"name": "t", "sha256": hash_key(KEY)}]},
        models=[], prompts=None, retrieval=rcfg.model_dump(),
    )  # fmt: skip
    gw = GatewayServer(cfg, default_plugins(cfg)).start(timeout=120)
    announce_gateway(home, gw.url)  # what `llmops serve` does, so the CLI finds it
    yield gw, home
    withdraw_gateway(home)
    gw.stop()


def _searching(url: str, done: threading.Event, failures: list[str], count: list[int]) -> None:
    c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    while not done.is_set():
        try:
            hits = list(c.vector_stores.search("kb", query="keyed hashing with a secret key"))
            assert hits and Path(hits[0].filename).name == "hmac.rst", hits[:1]
            count[0] += 1
        except Exception as exc:  # collected, asserted below
            failures.append(repr(exc))


def test_cli_rebuilds_through_the_serving_gateway_with_no_failed_search(
    served: tuple[GatewayServer, Path],
) -> None:
    from evals.cli import retrieval_app as app

    gw, home = served
    q, qrels = _judged(home)
    out = home / "gate.json"
    runner = CliRunner()
    gate = ["--queries", str(q), "--qrels", str(qrels)]
    env = {"LLMOPS_HOME": str(home), "LLMOPS_API_KEY": KEY}

    # Bad input first: no admin key; another embedder (the gateway searches with its own).
    res = runner.invoke(app, ["rebuild", "kb", *gate, "--chunk-tokens", "128"], env=env)
    assert res.exit_code == 2 and "admin key" in res.output, res.output
    res = runner.invoke(app, ["rebuild", "kb", *gate, "--new-model", "other", "--admin-key",
                              ADMIN], env=env)  # fmt: skip
    assert res.exit_code == 2 and "its own embedder" in res.output, res.output
    res = runner.invoke(app, ["rebuild", "kb", *gate, "--admin-key", "wrong"], env=env)
    assert res.exit_code == 1 and "401" in res.output, res.output

    done, failures, count = threading.Event(), [], [0]
    threads = [threading.Thread(target=_searching, args=(gw.url, done, failures, count))
               for _ in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        res = runner.invoke(app, ["rebuild", "kb", *gate, "--chunk-tokens", "128",
                                  "--admin-key", ADMIN, "--json", str(out)], env=env)  # fmt: skip
        time.sleep(0.5)  # searches after the switch too
    finally:
        done.set()
        for t in threads:
            t.join()
    assert res.exit_code == 0, res.output
    assert "through the gateway" in res.output and "kb -> kb@v2" in res.output, res.output
    result = json.loads(out.read_text())
    assert result["passed"] and result["switched"] and result["baseline"] == "kb@v1"
    assert result["files"] == 7 and result["chunks"] > 0 and result["switch_ms"] < 100
    assert not failures, failures[:3]
    assert count[0] >= 5, count
    admin = httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN}"})
    listing = admin.get("/admin/collections/kb/versions").json()
    assert listing["serving"] == "kb@v2"
    assert [v["name"] for v in listing["data"]] == ["kb@v1", "kb@v2"]
    v2 = next(v for v in listing["data"] if v["name"] == "kb@v2")
    assert v2["build"]["chunking"]["chunk_tokens"] == 128
    # The gateway still owns the store: the direct path says so instead of corrupting it.
    res = runner.invoke(app, ["rebuild", "kb", *gate, "--direct"], env=env)
    assert res.exit_code == 1 and "another process" in res.output, res.output


def test_admin_api_catches_up_files_attached_during_a_build_and_refuses_bad_moves(
    served: tuple[GatewayServer, Path],
) -> None:
    gw, _ = served
    admin = httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN}"},
                         timeout=60)  # fmt: skip
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    serving = admin.get("/admin/collections/kb/versions").json()["serving"]

    # Refusals: no admin key, a bad size, unknown names, dropping what serves.
    assert httpx.get(gw.url + "/admin/collections/kb/versions").status_code == 401
    bad = admin.post("/admin/collections/kb/versions", json={"chunk_tokens": 5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "chunk_tokens"
    assert admin.get("/admin/collections/nope/versions").status_code == 404
    missing = admin.post("/admin/collections/nope/versions", json={})
    assert missing.status_code == 404, missing.text
    assert admin.get("/admin/collections/kb/versions/kb@v99").status_code == 404
    busy = admin.delete(f"/admin/collections/kb/versions/{serving}")
    assert busy.status_code == 409 and "served by the alias" in busy.json()["error"]["message"]

    started = admin.post("/admin/collections/kb/versions", json={"chunk_tokens": 96})
    assert started.status_code == 202, started.text
    rec = started.json()
    assert rec["status"] == "in_progress" and rec["baseline"] == serving
    again = admin.post("/admin/collections/kb/versions", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "version_busy"
    early = admin.post("/admin/collections/kb/switch", json={"collection": rec["name"]})
    assert early.status_code in (200, 409)  # 409 while building; the build may be done
    if early.status_code == 200:  # too fast to catch building: switch back and go on
        admin.post("/admin/collections/kb/switch", json={"collection": serving})

    # A file attached to kb now lands in the version serving, not in the one being built.
    up = client.files.create(file=("kenya.md", b"# Kenya\n\nNairobi is the capital of Kenya.\n"),
                             purpose="assistants")  # fmt: skip
    vf = client.vector_stores.files.create_and_poll(
        vector_store_id="kb", file_id=up.id, attributes={"lang": "sw"}, poll_interval_ms=100
    )
    assert vf.status == "completed", vf
    deadline = time.monotonic() + 120
    while (rec := admin.get(f"/admin/collections/kb/versions/{rec['name']}").json())[
        "status"] == "in_progress" and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.2)
    assert rec["status"] == "completed" and rec["files"] == 7, rec

    switched = admin.post("/admin/collections/kb/switch", json={"collection": rec["name"]})
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert body["previous"] == serving and body["collection"] == rec["name"]
    assert len(body["caught_up"]["added"]) == 1, body
    sw = {"type": "eq", "key": "lang", "value": "sw"}
    hits = list(client.vector_stores.search("kb", query="capital of Kenya", filters=sw))  # type: ignore[arg-type]
    assert hits and hits[0].file_id == up.id  # in the new version, with its attributes

    back = admin.post("/admin/collections/kb/rollback")
    assert back.status_code == 200 and back.json()["collection"] == serving
    admin.post("/admin/collections/kb/switch", json={"collection": rec["name"]})
    pruned = admin.post("/admin/collections/kb/prune", json={"keep": 1}).json()
    assert serving not in pruned["dropped"]  # the version before the serving one stays
    versions = [v["name"] for v in admin.get("/admin/collections/kb/versions").json()["data"]]
    assert versions == [serving, rec["name"]]


def test_snapshot_while_serving_and_restore_beside_it(served: tuple[GatewayServer, Path]) -> None:
    from evals.cli import retrieval_app as app

    gw, home = served
    runner = CliRunner()
    env = {"LLMOPS_HOME": str(home)}
    out = home / "backup" / "kb.tar.gz"
    res = runner.invoke(app, ["snapshot", "kb", "--out", str(out)], env=env)
    assert res.exit_code == 2 and "admin key" in res.output, res.output
    res = runner.invoke(app, ["snapshot", "nope", "--out", str(out), "--admin-key", ADMIN],
                        env=env)  # fmt: skip
    assert res.exit_code == 1 and "404" in res.output and not out.exists(), res.output
    # Taken by the gateway that holds the files, downloaded by the CLI.
    res = runner.invoke(app, ["snapshot", "kb", "--out", str(out), "--admin-key", ADMIN], env=env)
    assert res.exit_code == 0 and out.is_file() and "kb@v" in res.output, res.output
    # A restore makes a new collection, which no process holds yet: it works while serving.
    res = runner.invoke(app, ["restore", str(out), "--as", "kb-restored"], env=env)
    assert res.exit_code == 0 and "restored kb-restored" in res.output, res.output
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    hits = list(client.vector_stores.search("kb-restored", query="keyed hashing with a secret key"))
    assert hits and Path(hits[0].filename).name == "hmac.rst"
