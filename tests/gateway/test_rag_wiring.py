"""Retrieval wired into the gateway: RAG prompts, vector store search, local embeddings.

Real parts: the embedded Qdrant engine, the local MiniLM model, the shipped `rag-answer` prompt
read from this repository's git history, the official openai SDK. The chat model is the fake
upstream (the real-engine RAG test is tests/engine/test_rag_engine.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-rag-test"
DOCS = {
    "france.md": "# France\n\nParis is the capital of France. It lies on the Seine.\n",
    "japan.md": "# Japan\n\nTokyo is the capital of Japan and its largest city.\n",
    "kenya.md": "# Kenya\n\nNairobi is the capital of Kenya, in East Africa.\n",
}


@pytest.fixture(scope="module")
def rag_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayServer, FakeUpstream]]:
    from retrieval import RetrievalConfig, Retriever

    home = tmp_path_factory.mktemp("home")
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    rcfg = RetrievalConfig(home=home)
    r = Retriever(rcfg)
    r.ingest([str(docs)], "docs")
    r.close()  # the embedded engine allows one process-wide handle per collection

    up = FakeUpstream(name="llm").start()
    cfg = GatewayConfig(
        auth={"enabled": True, "keys": [{"name": "t", "sha256": hash_key(KEY)}]},
        models=[
            {"name": "smollm2-135m-instruct", "upstreams": [{"url": up.url}]},
            {"name": "minilm", "kind": "embedding", "embedder": {}},
        ],
        prompts={"repo": str(REPO), "dir": "prompts", "ref": None, "reload_interval_s": 0},
        retrieval=rcfg.model_dump(),
    )
    gw = GatewayServer(cfg, default_plugins(cfg)).start(timeout=120)
    yield gw, up
    gw.stop()
    up.stop()


def test_rag_prompt_retrieves_renders_and_cites(
    rag_gateway: tuple[GatewayServer, FakeUpstream],
) -> None:
    gw, up = rag_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="",
        messages=[],
        extra_body={
            "prompt": {
                "id": "rag-answer",
                "variables": {"question": "What is the capital of Kenya?"},
            }
        },
    )
    assert raw.headers["x-prompt-name"] == "rag-answer"
    assert len(raw.headers["x-prompt-version"]) >= 8
    body = raw.http_response.json()
    citations = body["citations"]
    assert citations and citations[0]["source"].endswith("kenya.md")
    assert {"id", "source", "score"} <= set(citations[0])
    sent = up.requests[-1]
    assert sent["model"] == "smollm2-135m-instruct"  # the template's model
    assert sent["max_tokens"] == 200  # the template's parameters
    user_msg = sent["messages"][-1]["content"]
    assert "Nairobi is the capital of Kenya" in user_msg
    assert "Question: What is the capital of Kenya?" in user_msg


def test_rag_prompt_missing_variable_is_400(
    rag_gateway: tuple[GatewayServer, FakeUpstream],
) -> None:
    gw, _ = rag_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="", messages=[], extra_body={"prompt": {"id": "rag-answer", "variables": {}}}
        )
    assert "question" in str(e.value)


def test_vector_store_search(rag_gateway: tuple[GatewayServer, FakeUpstream]) -> None:
    gw, _ = rag_gateway
    url = gw.url + "/v1/vector_stores/docs/search"
    assert httpx.post(url, json={"query": "capital of Japan"}).status_code == 401
    r = httpx.post(
        url,
        json={"query": "capital of Japan", "max_num_results": 2},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["data"][0]["filename"].endswith("japan.md")
    assert "Tokyo" in page["data"][0]["content"][0]["text"]
    missing = httpx.post(
        gw.url + "/v1/vector_stores/nope/search",
        json={"query": "x"},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert missing.status_code == 404 and "error" in missing.json()


def test_local_embeddings_model(rag_gateway: tuple[GatewayServer, FakeUpstream]) -> None:
    gw, _ = rag_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    out = client.embeddings.create(model="minilm", input=["Paris", "Tokyo"])
    assert len(out.data) == 2 and len(out.data[0].embedding) == 384
    assert out.usage.prompt_tokens > 0
    b64 = client.embeddings.create(model="minilm", input="Paris", encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)  # type: ignore[arg-type]
    vec = np.frombuffer(raw, dtype="<f4")
    assert vec.shape == (384,)
    assert np.allclose(vec, out.data[0].embedding, atol=1e-5)
    ready = httpx.get(gw.url + "/readyz").json()
    assert ready["models"]["minilm"]["ready"] is True
