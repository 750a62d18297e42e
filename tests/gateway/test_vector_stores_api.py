"""OpenAI's files and vector store API on the gateway, driven by the official ``openai`` SDK
(real HTTP, the real embedding model and embedded Qdrant engine; a fake chat upstream stands in
for vLLM): upload, create a store, attach a batch and a file and poll them, search what was
ingested, list, detach, delete, and the errors, while chat and search traffic keep flowing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer

KEY = "sk-vector-stores"
PAGES = {
    "france.md": "# France\n\nParis is the capital of France. It lies on the Seine.\n",
    "japan.md": "# Japan\n\nTokyo is the capital of Japan and its largest city.\n",
    "kenya.md": "# Kenya\n\nNairobi is the capital of Kenya, in East Africa.\n",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    from retrieval import RetrievalConfig, Retriever

    home = tmp_path_factory.mktemp("home")
    docs = tmp_path_factory.mktemp("docs")
    (docs / "manual.md").write_text("# Kettle\n\nBoil the water to 93 degrees for green tea.\n")
    rcfg = RetrievalConfig(home=home)
    r = Retriever(rcfg)
    r.ingest([str(docs)], "docs")  # ingested by the CLI before the gateway started
    r.close()
    up = FakeUpstream(name="llm").start()
    cfg = GatewayConfig(
        auth={"enabled": True, "keys": [{"name": "t", "sha256": hash_key(KEY)}]},
        models=[{"name": "chat", "upstreams": [{"url": up.url}]}],
        prompts=None,
        retrieval=rcfg.model_dump(),
        server={"max_upload_bytes": 4096},
    )
    gw = GatewayServer(cfg, default_plugins(cfg)).start(timeout=120)
    yield gw, tmp_path_factory.mktemp("uploads")
    gw.stop()
    up.stop()


def test_sdk_ingests_while_chat_and_search_keep_flowing(
    served: tuple[GatewayServer, Path],
) -> None:
    gw, tmp = served
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    done = threading.Event()
    failures: list[str] = []
    counts = {"chat": 0, "search": 0}

    def traffic(kind: str) -> None:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
        while not done.is_set():
            try:
                if kind == "chat":
                    msgs = [{"role": "user", "content": "hi"}]
                    c.chat.completions.create(model="chat", max_tokens=4, messages=msgs)  # type: ignore[arg-type]
                else:
                    hits = list(c.vector_stores.search("docs", query="green tea water"))
                    assert hits and hits[0].filename == "manual.md"
                counts[kind] += 1
            except Exception as exc:  # collected, asserted below
                failures.append(f"{kind}: {exc!r}")

    threads = [threading.Thread(target=traffic, args=(k,)) for k in ("chat", "search")]
    for t in threads:
        t.start()
    try:
        for name, text in PAGES.items():
            (tmp / name).write_text(text)
        up = {n: client.files.create(file=(tmp / n).open("rb"), purpose="assistants")
              for n in PAGES}  # fmt: skip
        assert up["kenya.md"].filename == "kenya.md" and up["kenya.md"].bytes == len(
            PAGES["kenya.md"])  # fmt: skip
        vs = client.vector_stores.create(name="countries", metadata={"team": "ml"})
        assert vs.id == "countries" and vs.metadata == {"team": "ml"}
        batch = client.vector_stores.file_batches.create_and_poll(
            vector_store_id=vs.id, file_ids=[up["france.md"].id, up["kenya.md"].id],
            attributes={"lang": "en"}, poll_interval_ms=100,
        )  # fmt: skip
        assert batch.status == "completed" and batch.file_counts.completed == 2, batch
        static = {
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
        }
        vf = client.vector_stores.files.create_and_poll(
            vector_store_id=vs.id, file_id=up["japan.md"].id, poll_interval_ms=100,
            chunking_strategy=static,  # type: ignore[arg-type]
        )  # fmt: skip
        assert vf.status == "completed" and vf.last_error is None
        assert vf.chunking_strategy and vf.chunking_strategy.model_dump() == static
        assert batch.id and client.vector_stores.files.retrieve(
            up["france.md"].id, vector_store_id=vs.id).chunking_strategy.type == "auto"  # type: ignore[union-attr]  # fmt: skip
        # A file type with no reader is accepted, then fails with OpenAI's error code.
        odd = client.files.create(file=("notes.xyz", b"binary stuff"), purpose="assistants")
        bad = client.vector_stores.files.create_and_poll(
            vector_store_id=vs.id, file_id=odd.id, poll_interval_ms=100
        )
        assert bad.status == "failed" and bad.last_error and bad.last_error.code == (
            "unsupported_file")  # fmt: skip

        hits = list(client.vector_stores.search(vs.id, query="capital of Kenya",
                                                max_num_results=2))  # fmt: skip
        assert hits[0].filename == "kenya.md" and hits[0].file_id == up["kenya.md"].id
        assert hits[0].attributes and hits[0].attributes["lang"] == "en"
        en = {"type": "eq", "key": "lang", "value": "en"}
        filtered = list(client.vector_stores.search(vs.id, query="capital", filters=en))  # type: ignore[arg-type]
        assert {h.filename for h in filtered} == {"france.md", "kenya.md"}

        listed = {f.id: f.status for f in client.vector_stores.files.list(vs.id)}
        assert listed == {up["france.md"].id: "completed", up["kenya.md"].id: "completed",
                          up["japan.md"].id: "completed", odd.id: "failed"}  # fmt: skip
        got = client.vector_stores.retrieve(vs.id)
        assert (got.status, got.file_counts.completed, got.file_counts.failed) == (
            "completed", 3, 1)  # fmt: skip
        stores = {s.id: s for s in client.vector_stores.list()}
        assert {"docs", "countries"} <= set(stores)
        assert stores["docs"].file_counts.completed == 1  # the CLI's file, seen as one
        in_batch = {f.id for f in client.vector_stores.file_batches.list_files(
            vector_store_id=vs.id, batch_id=batch.id)}  # fmt: skip
        assert in_batch == {up["france.md"].id, up["kenya.md"].id}
        assert client.files.content(up["japan.md"].id).read() == PAGES["japan.md"].encode()
        assert up["japan.md"].id in {f.id for f in client.files.list()}

        # Detach: its chunks leave the store; the uploaded file stays.
        assert client.vector_stores.files.delete(up["kenya.md"].id, vector_store_id=vs.id).deleted
        hits = list(client.vector_stores.search(vs.id, query="capital of Kenya"))
        assert "kenya.md" not in {h.filename for h in hits}
        assert client.files.retrieve(up["kenya.md"].id).id == up["kenya.md"].id

        # Errors, OpenAI-shaped.
        with pytest.raises(openai.NotFoundError) as nf:
            client.vector_stores.retrieve("no-such-store")
        assert nf.value.body["code"] == "vector_store_not_found"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.files.create(vector_store_id=vs.id,
                                              file_id="file-" + "0" * 24)  # fmt: skip
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve("file-" + "0" * 24)
        with pytest.raises(openai.APIStatusError) as big:
            client.files.create(file=("big.md", b"x" * 8192), purpose="assistants")
        assert big.value.status_code == 413
        with pytest.raises(openai.BadRequestError, match="half"):
            client.vector_stores.files.create(
                vector_store_id=vs.id, file_id=up["japan.md"].id,
                chunking_strategy={"type": "static", "static": {  # type: ignore[arg-type]
                    "max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60}},
            )  # fmt: skip
        with pytest.raises(openai.BadRequestError, match="reserved"):
            client.vector_stores.files.create(vector_store_id=vs.id, file_id=up["japan.md"].id,
                                              attributes={"source": "x"})  # fmt: skip
        with pytest.raises(openai.BadRequestError):
            client.files.create(file=("a.md", b"# A"), purpose="nonsense")  # type: ignore[arg-type]
        r = httpx.get(gw.url + "/v1/vector_stores", timeout=10)
        assert r.status_code == 401 and r.json()["error"]["message"]

        assert client.vector_stores.delete(vs.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.retrieve(vs.id)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert counts["chat"] > 0 and counts["search"] > 0


def test_llmops_ingest_hands_files_to_the_serving_gateway(
    served: tuple[GatewayServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from common import announce_gateway, withdraw_gateway
    from retrieval.cli import app

    gw, _ = served
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees get 25 days of paid leave a year.\n")
    (docs / "travel.md").write_text("# Travel\n\nBook trains for trips under four hours.\n")
    runner = CliRunner()
    args = ["ingest", str(docs), "-c", "handbook", "--gateway", gw.url, "--api-key", KEY]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "2 files ingested by the gateway" in res.output
    res = runner.invoke(app, args)  # nothing changed: nothing uploaded
    assert res.exit_code == 0 and "0 files ingested" in res.output and "2 unchanged" in res.output
    (docs / "leave.md").write_text("# Leave\n\nEmployees get 30 days of paid leave a year.\n")
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "1 files ingested by the gateway (1 replacing" in res.output

    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    hits = list(client.vector_stores.search("handbook", query="days of paid leave"))
    texts = " ".join(h.content[0].text for h in hits)
    assert "30 days" in texts and "25 days" not in texts  # the old version was detached
    assert len(list(client.vector_stores.files.list("handbook"))) == 2

    # Chunking options go as OpenAI's static strategy; the same content cut otherwise is
    # sent again, and sizes outside the API's bounds are refused before anything is sent.
    res = runner.invoke(app, [*args, "--chunk-tokens", "120", "--overlap-tokens", "10"])
    assert res.exit_code == 0 and "2 files ingested by the gateway (2 replacing" in res.output
    files = list(client.vector_stores.files.list("handbook"))
    cuts = [f.chunking_strategy.model_dump() for f in files if f.chunking_strategy]
    static = {"type": "static",
              "static": {"max_chunk_size_tokens": 120, "chunk_overlap_tokens": 10}}  # fmt: skip
    assert cuts == [static, static]
    res = runner.invoke(app, [*args, "--chunk-tokens", "120", "--overlap-tokens", "10"])
    assert res.exit_code == 0 and "2 unchanged" in res.output
    res = runner.invoke(app, [*args, "--chunk-tokens", "64"])
    assert res.exit_code == 2 and "100-4096" in res.output, res.output
    res = runner.invoke(app, [*args, "--overlap-tokens", "10"])
    assert res.exit_code == 2 and "needs --chunk-tokens" in res.output, res.output

    # No --gateway: the gateway that announced itself for the data directory is used.
    home = tmp_path / "home"
    announce_gateway(home, gw.url)
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    try:
        res = runner.invoke(app, ["ingest", str(docs), "-c", "handbook"])
        assert res.exit_code == 0 and "handing the files to the gateway" in res.output, res.output
        monkeypatch.setenv("LLMOPS_API_KEY", "sk-wrong")
        res = runner.invoke(app, ["ingest", str(docs), "-c", "handbook"])
        assert res.exit_code == 1 and "401" in res.output and "--api-key" in res.output
    finally:
        withdraw_gateway(home)


def test_files_accepted_before_a_restart_are_ingested_at_start_up(tmp_path: Path) -> None:
    import asyncio
    import io
    import json

    from gateway._files import FileStore
    from gateway._vector_store_jobs import VectorStoreJobs
    from retrieval import RetrievalConfig, Retriever

    retriever = Retriever(RetrievalConfig(home=tmp_path))
    files = FileStore(tmp_path / "files")
    f = files.create("kenya.md", "assistants", io.BytesIO(PAGES["kenya.md"].encode()))
    retriever.create_collection("kb")
    # What a gateway that stopped mid-ingest left: the file accepted, still in progress.
    record = {"name": "kb", "created_at": 1, "metadata": None, "batches": {}, "files": {
        f["id"]: {"created_at": 1, "status": "in_progress", "last_error": None,
                  "usage_bytes": f["bytes"], "attributes": {}, "batch_id": None,
                  "source": str(files.path(f["id"]).resolve())}}}  # fmt: skip
    (tmp_path / "vector_stores").mkdir()
    (tmp_path / "vector_stores" / "kb.json").write_text(json.dumps(record))

    async def restart() -> dict:
        jobs = VectorStoreJobs(retriever, files, tmp_path / "vector_stores")
        await jobs.resume()
        for _ in range(600):
            obj = await jobs.file_object("kb", f["id"])
            if obj["status"] != "in_progress":
                break
            await asyncio.sleep(0.05)
        await jobs.close()
        return obj

    try:
        obj = asyncio.run(restart())
        assert obj["status"] == "completed", obj
        hits = retriever.search_sync("kb", "capital of Kenya", 1)
        assert hits and hits[0].metadata["file_id"] == f["id"]
        saved = json.loads((tmp_path / "vector_stores" / "kb.json").read_text())
        assert saved["files"][f["id"]]["status"] == "completed"
    finally:
        retriever.close()
