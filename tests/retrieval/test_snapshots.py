"""Snapshots and restore: the embedded engine's consistent copy (flushed folder in a tar,
writes held off, searches going on), restored under a new name and served through an alias;
and the refusals (an existing name, a file that is not a snapshot, local mode, which has no
snapshots). The server backend's path uses Qdrant's own snapshot API, which needs a Qdrant
server binary that this machine does not have, so it is not exercised here."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval import RetrievalConfig, RetrievalError, Retriever, StoreConfig, switch_alias

from .test_aliases import V1, _pages


def test_embedded_snapshot_restores_under_a_new_name(tmp_path: Path, embedder) -> None:
    from evals.cli import retrieval_app as app

    store = StoreConfig(path=str(tmp_path / "edge"))
    cfg = RetrievalConfig(home=tmp_path, store=store)
    r = Retriever(cfg, embedder=embedder)
    query = "keyed hashing with a secret key"
    try:
        r.ingest([str(_pages(tmp_path, "docs", V1))], "kb@v1")
        switch_alias(r.store, "kb", "kb@v1")
        before = [(h.id, round(h.score, 5)) for h in r.search_sync("kb", query, 5)]
        errors: list[BaseException] = []
        done = threading.Event()

        def search() -> None:
            while not done.is_set():
                try:
                    assert r.search_sync("kb", query, 5)
                except BaseException as exc:  # re-raised below
                    errors.append(exc)

        t = threading.Thread(target=search)
        t.start()
        try:
            snap = r.store.snapshot("kb", tmp_path / "backup" / "kb.tar.gz")
        finally:
            done.set()
            t.join()
        assert not errors and snap.stat().st_size > 0
        r.store.restore(snap, "kb@v2")
        assert r.store.count("kb@v2") == r.store.count("kb@v1")
        switch_alias(r.store, "kb", "kb@v2")
        after = [(h.id, round(h.score, 5)) for h in r.search_sync("kb", query, 5)]
        assert after == before
        assert r.collection_meta("kb@v2") == r.collection_meta("kb@v1")
    finally:
        r.close()

    runner = CliRunner()
    where = ["--store-path", store.path]
    out = tmp_path / "cli.tar.gz"
    res = runner.invoke(app, ["snapshot", "kb", "--out", str(out), *where])
    assert res.exit_code == 0 and "kb@v2 ->" in res.output, res.output
    res = runner.invoke(app, ["restore", str(out), "--as", "kb@v3", *where])
    assert res.exit_code == 0 and "restored kb@v3" in res.output, res.output
    # Refusals: an existing name, a file that is not a snapshot, a missing collection.
    res = runner.invoke(app, ["restore", str(out), "--as", "kb@v1", *where])
    assert res.exit_code == 1 and "already exists" in res.output
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    res = runner.invoke(app, ["restore", str(junk), "--as", "kb@v4", *where])
    assert res.exit_code == 1 and "not a collection snapshot" in res.output
    res = runner.invoke(app, ["snapshot", "nope", "--out", str(out), *where])
    assert res.exit_code == 1 and "does not exist" in res.output
    assert not list(tmp_path.glob("edge/.restore-*"))  # no staging left behind


def test_local_mode_says_snapshots_need_a_server(tmp_path: Path, embedder) -> None:
    cfg = RetrievalConfig(home=tmp_path, store=StoreConfig(backend="qdrant", path=":memory:"))
    r = Retriever(cfg, embedder=embedder)
    try:
        r.ingest([str(_pages(tmp_path, "docs", V1[:1]))], "kb")
        with pytest.raises(RetrievalError, match="need a Qdrant server"):
            r.store.snapshot("kb", tmp_path / "s.snapshot")
    finally:
        r.close()
