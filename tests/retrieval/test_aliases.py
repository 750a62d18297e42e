"""Versioned collections behind aliases on both backends: resolution through every store call,
the atomic switch with searches in flight (none may fail), the refusals that keep a served
version safe, and ``llmops retrieval rebuild`` with its eval gate, ``rollback`` and
``versions`` (the real embedding model and engines, judged queries over the Python docs)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval import (
    CollectionNotFoundError,
    RetrievalConfig,
    RetrievalError,
    Retriever,
    StoreConfig,
    collection_versions,
    rollback_alias,
    switch_alias,
)
from retrieval._edge_store import EdgeStore

from .conftest import FIXTURES
from .test_tune import _judged

V1 = ("hmac.rst", "fnmatch.rst", "copy.rst")
V2 = ("pwd.rst", "atexit.rst", "tomllib.rst", "token.rst")


def _pages(tmp_path: Path, folder: str, names: tuple[str, ...]) -> Path:
    d = tmp_path / folder
    d.mkdir()
    for n in names:
        shutil.copy(FIXTURES / "pydocs" / "library" / n, d / n)
    return d


def _two_versions(retriever: Retriever, tmp_path: Path) -> None:
    retriever.ingest([str(_pages(tmp_path, "v1", V1))], "kb@v1")
    retriever.ingest([str(_pages(tmp_path, "v2", V2))], "kb@v2")


def _stems(hits: list) -> set[str]:
    return {Path(h.source).stem for h in hits}


def test_alias_resolves_switches_and_guards_the_served_version(
    retriever: Retriever, tmp_path: Path
) -> None:
    _two_versions(retriever, tmp_path)
    store = retriever.store
    switch_alias(store, "kb", "kb@v1")
    assert store.aliases() == {"kb": "kb@v1"} and store.resolve("kb") == "kb@v1"
    assert store.list_collections() == ["kb@v1", "kb@v2"]  # aliases are not collections
    assert store.count("kb") == store.count("kb@v1")
    assert _stems(retriever.search_sync("kb", "keyed hashing with a secret key", 3)) <= {
        s.split(".")[0] for s in V1
    }
    switch_alias(store, "kb", "kb@v2")
    hits = retriever.search_sync("kb", "the password database of user accounts", 3)
    assert _stems(hits) <= {s.split(".")[0] for s in V2} and retriever.collection_meta("kb")
    v = collection_versions(store, "kb")
    assert (v.serving, v.versions, v.previous(), v.next_name()) == (
        "kb@v2", ["kb@v1", "kb@v2"], "kb@v1", "kb@v3")  # fmt: skip
    assert rollback_alias(store, "kb") == ("kb@v2", "kb@v1")
    with pytest.raises(RetrievalError, match="no older version"):
        rollback_alias(store, "kb")
    # Refusals: the served version, the alias itself, a missing target, an alias of an alias,
    # a version-looking alias, and a collection taking an alias's name.
    with pytest.raises(RetrievalError, match="served by the alias 'kb'"):
        store.drop_collection("kb@v1")
    with pytest.raises(RetrievalError, match="is an alias"):
        store.drop_collection("kb")
    with pytest.raises(CollectionNotFoundError):
        store.set_alias("kb", "kb@v9")
    store.set_alias("docs", "kb@v2")
    with pytest.raises(RetrievalError, match="itself an alias"):
        store.set_alias("other", "docs")
    with pytest.raises(ValueError, match="invalid alias"):
        store.set_alias("kb@v3", "kb@v2")
    with pytest.raises(RetrievalError, match="is an alias"):
        store.create_collection("docs", retriever.collection_meta("kb@v2"))
    store.create_collection("plain", retriever.collection_meta("kb@v1"))
    with pytest.raises(RetrievalError, match="is a collection"):
        store.set_alias("plain", "kb@v1")
    store.drop_alias("docs")
    store.drop_collection("kb@v2")  # no longer served: may go
    assert store.list_collections() == ["kb@v1", "plain"] and store.aliases() == {"kb": "kb@v1"}
    with pytest.raises(CollectionNotFoundError):
        store.drop_alias("docs")


def test_embedded_alias_file_is_seen_by_another_store_at_once(tmp_path: Path) -> None:
    # Two store objects on one folder stand for two processes (the gateway and the CLI): the
    # pointer file is re-read when it is replaced, so the next call of either sees a switch.
    a, b = EdgeStore(tmp_path / "edge"), EdgeStore(tmp_path / "edge")
    (tmp_path / "edge" / "kb@v1").mkdir(parents=True)
    (tmp_path / "edge" / "kb@v1" / "meta.json").write_text('{"model": "m", "dim": 2}')
    (tmp_path / "edge" / "kb@v2").mkdir()
    (tmp_path / "edge" / "kb@v2" / "meta.json").write_text('{"model": "m", "dim": 2}')
    assert b.resolve("kb") == "kb"
    a.set_alias("kb", "kb@v1")
    assert b.resolve("kb") == "kb@v1"
    a.set_alias("kb", "kb@v2")
    assert b.resolve("kb") == "kb@v2" and b.collection_meta("kb") is not None
    assert not list((tmp_path / "edge").glob("*.tmp"))  # written aside, then replaced


def test_searches_in_flight_all_succeed_across_switches(
    retriever: Retriever, tmp_path: Path
) -> None:
    _two_versions(retriever, tmp_path)
    switch_alias(retriever.store, "kb", "kb@v1")
    v1, v2 = ({n.split(".")[0] for n in names} for names in (V1, V2))
    queries = ["keyed hashing with a secret key", "the password database of user accounts",
               "shell-style wildcards", "parse TOML files"]  # fmt: skip
    errors: list[BaseException] = []
    seen: list[str] = []
    done = threading.Event()

    def search(k: int) -> None:
        n = 0
        while not done.is_set():
            try:
                hits = retriever.search_sync("kb", queries[(k + n) % len(queries)], 3)
                stems = _stems(hits)
                # Every answer comes whole from one version, never a mix or nothing.
                assert hits and (stems <= v1 or stems <= v2), stems
                seen.append("v1" if stems <= v1 else "v2")
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)
            n += 1

    threads = [threading.Thread(target=search, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    switch_s = []
    try:
        for i in range(20):
            time.sleep(0.02)
            switch_s.append(switch_alias(retriever.store, "kb", "kb@v2" if i % 2 == 0 else "kb@v1"))
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert {"v1", "v2"} <= set(seen) and len(seen) >= 20
    assert retriever.store.resolve("kb") == "kb@v1"
    assert len(switch_s) == 20  # the speed of a switch is measured in bench/retrieval_speed.py


def test_rebuild_gates_switches_and_rolls_back(tmp_path: Path, embedder) -> None:
    from evals.cli import retrieval_app as app

    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES / "pydocs" / "library", docs)
    store = StoreConfig(path=str(tmp_path / "edge"))
    cfg = RetrievalConfig(home=tmp_path, store=store)
    r = Retriever(cfg, embedder=embedder)
    r.ingest([str(docs)], "kb")  # a plain collection, from before versioning
    r.close()
    q, qrels = _judged(tmp_path)
    runner = CliRunner()
    where = ["--store-path", store.path]
    gate = ["--queries", str(q), "--qrels", str(qrels), *where]
    out = tmp_path / "gate.json"

    # Same pages, smaller chunks: as good on the judged queries, so the alias switches.
    res = runner.invoke(app, ["rebuild", "kb", "--chunk-tokens", "128", *gate, "--json", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["passed"] and result["switched"] and result["candidate"] == "kb@v1"
    assert {x["reading"] for x in result["readings"]} == {"non_inferior"}
    res = runner.invoke(app, ["rebuild", "kb", "--chunk-tokens", "96", *gate])
    assert res.exit_code == 0 and "kb -> kb@v2" in res.output, res.output
    res = runner.invoke(app, ["versions", "kb", *where])
    assert res.exit_code == 0 and "kb@v2" in res.output and "<- serving" in res.output
    r = Retriever(cfg, embedder=embedder)
    try:
        assert r.store.resolve("kb") == "kb@v2" and "kb" not in r.store.list_collections()
        assert r.collection_meta("kb").model == embedder.name
        assert r.search_sync("kb", "keyed hashing with a secret key", 1)[0].source.endswith(
            "hmac.rst")  # fmt: skip
    finally:
        r.close()
    res = runner.invoke(app, ["rollback", "kb", *where])
    assert res.exit_code == 0 and "kb -> kb@v1 (was kb@v2)" in res.output, res.output

    # Four of the seven pages are gone from disk: the rebuild would lose their answers, so the
    # gate fails, the candidate is dropped and kb still serves v1.
    for name in ("pwd.rst", "atexit.rst", "tomllib.rst", "token.rst"):
        (docs / name).unlink()
    res = runner.invoke(app, ["rebuild", "kb", *gate, "--json", str(out)])
    assert res.exit_code == 1 and "gate failed" in res.output, res.output
    result = json.loads(out.read_text())
    assert not result["passed"] and not result["switched"] and len(result["missing_sources"]) == 4
    r = Retriever(cfg, embedder=embedder)
    try:
        assert r.store.resolve("kb") == "kb@v1"
        assert r.store.list_collections() == ["kb@v1", "kb@v2"]  # kb@v3 was dropped
    finally:
        r.close()

    # Bad input: a name with nothing behind it, no judged data, an alias onto nothing.
    res = runner.invoke(app, ["rebuild", "nope", *gate])
    assert res.exit_code == 1 and "does not exist" in res.output
    qrels.write_text("query-id\tcorpus-id\tscore\n")
    res = runner.invoke(app, ["rebuild", "kb", *gate])
    assert res.exit_code == 2 and "no judged data" in res.output
    res = runner.invoke(app, ["alias", "kb", "kb@v7", *where])
    assert res.exit_code == 1 and "does not exist" in res.output
