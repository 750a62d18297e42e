"""The gateway glue over a real HTTP server on loopback, called with the official `openai`
SDK: vector-store search in OpenAI's shapes, the `retrieve` adapter, local `/v1/embeddings`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from gateway._vector_search import (
    make_embeddings_router,
    make_retrieve,
    make_vector_search_router,
    normalised_score,
)
from retrieval import RetrievalConfig, Retriever, StoreConfig

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[tuple[str, Retriever]]:
    tmp = tmp_path_factory.mktemp("gw")
    cfg = RetrievalConfig(store=StoreConfig(path=str(tmp / "edge")))
    retriever = Retriever(cfg, embedder=embedder)
    retriever.ingest([str(FIXTURES / "mixed")], "kb", tags=["support"])
    app = FastAPI()
    app.include_router(make_vector_search_router(retriever))
    app.include_router(make_embeddings_router({"local-minilm": embedder}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", retriever
    server.should_exit = True
    thread.join(10)
    retriever.close()


@pytest.fixture
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0], api_key="unused", max_retries=0)


def test_vector_store_search_with_sdk(client: openai.OpenAI) -> None:
    page = client.vector_stores.search("kb", query="how hot should the water be", max_num_results=3)
    items = list(page)
    assert 1 <= len(items) <= 3
    top = items[0]
    assert top.filename == "manual.pdf"
    assert top.file_id.startswith("file-")
    assert 0.0 <= top.score <= 1.0
    assert top.content[0].type == "text" and "93 degrees" in top.content[0].text
    assert top.attributes and top.attributes["doc_type"] == "pdf"
    assert top.attributes["tags"] == "support"
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)


def test_filters_ranking_options_and_mode(client: openai.OpenAI) -> None:
    page = client.vector_stores.search(
        "kb",
        query="security",
        filters={"type": "eq", "key": "doc_type", "value": "html"},
        ranking_options={"ranker": "none", "score_threshold": 0.0},
    )
    assert {i.filename for i in page} == {"faq.html"}
    raw = client.post(
        "/vector_stores/kb/search",
        body={"query": ["descale", "boiler"], "mode": "sparse", "max_num_results": 2},
        cast_to=object,
    )
    assert raw["object"] == "vector_store.search_results.page"  # type: ignore[index]
    assert raw["search_query"] == ["descale", "boiler"]  # type: ignore[index]
    assert raw["has_more"] is False and raw["next_page"] is None  # type: ignore[index]
    assert raw["data"][0]["filename"] == "notes.txt"  # type: ignore[index]


def test_errors_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.vector_stores.search("missing", query="x")
    assert nf.value.code == "vector_store_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.vector_stores.search("kb", query="x", max_num_results=500)
    assert bad.value.param == "max_num_results"
    with pytest.raises(openai.BadRequestError) as badf:
        client.vector_stores.search(
            "kb", query="x", filters={"type": "gt", "key": "position", "value": "high"}
        )
    assert badf.value.code == "invalid_filter"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search("bad name!", query="x")


async def test_retrieve_adapter(served) -> None:
    _, retriever = served
    retrieve = make_retrieve(retriever)
    hits = await retrieve("kb", "billing invoices", 2, {"doc_type": "html"})
    assert hits and set(hits[0]) == {"id", "score", "text", "source", "metadata"}
    assert hits[0]["metadata"]["filename"] == "faq.html"
    assert "Invoices" in hits[0]["text"]


def test_local_embeddings_float_and_base64(client: openai.OpenAI, embedder) -> None:
    texts = ["the cat sat", "on the mat"]
    expected = embedder.embed_documents(texts)
    as_float = client.embeddings.create(model="local-minilm", input=texts, encoding_format="float")
    assert [d.index for d in as_float.data] == [0, 1]
    assert np.allclose(np.array(as_float.data[0].embedding), expected[0], atol=1e-5)
    assert as_float.usage.prompt_tokens == sum(embedder.count_tokens(texts))
    as_b64 = client.embeddings.create(model="local-minilm", input="the cat sat")  # SDK: base64
    assert np.allclose(np.array(as_b64.data[0].embedding), expected[0], atol=1e-5)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="local-minilm", input="x", dimensions=64)


def test_scores_map_into_unit_interval() -> None:
    assert normalised_score(1.0, "rrf", None, 2) == 1.0
    assert normalised_score(0.25, "rrf", None, 2) == 0.25
    assert normalised_score(7.0, "sparse", None, 2) == pytest.approx(0.875)
    assert normalised_score(-0.2, "dense", None, 2) == 0.0
    assert normalised_score(1.6, "dbsf", None, 2) == pytest.approx(0.8)


def test_openai_embedder_against_an_openai_compatible_server(served, embedder) -> None:
    """The upstream embedder (official SDK) talks to a real `/v1/embeddings`: here the
    gateway's own local handler, so its vectors must equal the local model's."""
    from retrieval import EmbedderConfig, OpenAIEmbedder

    upstream = OpenAIEmbedder(
        EmbedderConfig(kind="openai", model="local-minilm", base_url=served[0], batch_size=2)
    )
    assert upstream.dim == embedder.dim  # probed with one request
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    assert np.allclose(upstream.embed_documents(texts), embedder.embed_documents(texts), atol=1e-5)
    assert upstream.count_tokens(["abcdefgh"]) == [2]  # no local tokenizer: ~4 chars per token
