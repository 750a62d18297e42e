"""A RAG request end to end: shipped `rag-answer` prompt from git, retrieval from the embedded
Qdrant engine, the answer from the real vLLM CPU engine, all through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from tests.fakes.servers import GatewayServer

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-rag-engine"


@pytest.fixture(scope="module")
def rag_gateway(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    from retrieval import RetrievalConfig, Retriever

    home = tmp_path_factory.mktemp("rag-home")
    docs = tmp_path_factory.mktemp("rag-docs")
    (docs / "kenya.md").write_text("# Kenya\n\nThe capital of Kenya is Nairobi.\n")
    (docs / "peru.md").write_text("# Peru\n\nThe capital of Peru is Lima.\n")
    rcfg = RetrievalConfig(home=home)
    r = Retriever(rcfg)
    r.ingest([str(docs)], "docs")
    r.close()
    cfg = GatewayConfig(
        auth={"enabled": True, "keys": [{"name": "t", "sha256": hash_key(KEY)}]},
        # The session engine serves as this gateway's replica, under the template's model name.
        models=[
            {
                "name": "smollm2-135m-instruct",
                "served_name": engine.served_name,
                "upstreams": [{"url": engine.base_url}],
            }
        ],
        prompts={"repo": str(REPO), "dir": "prompts", "ref": None, "reload_interval_s": 0},
        retrieval=rcfg.model_dump(),
    )
    gw = GatewayServer(cfg, default_plugins(cfg)).start(timeout=120)
    yield gw
    gw.stop()


def test_rag_answer_from_real_engine(rag_gateway: GatewayServer) -> None:
    client = openai.OpenAI(base_url=rag_gateway.url + "/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="",
        messages=[],
        temperature=0,
        extra_body={
            "prompt": {
                "id": "rag-answer",
                "variables": {"question": "What is the capital of Kenya?"},
            }
        },
    )
    assert raw.headers["x-prompt-name"] == "rag-answer"
    body = raw.http_response.json()
    assert body["citations"][0]["source"].endswith("kenya.md")
    answer = body["choices"][0]["message"]["content"]
    assert "Nairobi" in answer
    assert body["usage"]["prompt_tokens"] > 20
