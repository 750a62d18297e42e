"""The ONNX Runtime query encoder: the default model's queries embedded on ONNX Runtime match
PyTorch's vectors, long texts truncate the same way, the export is cached and reused, and a
model the export cannot reproduce keeps PyTorch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from retrieval import EmbedderConfig
from retrieval._embedders import SentenceTransformerEmbedder
from retrieval._onnx_query import OnnxUnsupported, _structure

QUERIES = [
    "how hot should the water be for green tea",
    "Wie rotiere ich einen API-Schlüssel?",
    "向量数据库的别名如何切换",
    "a " * 400 + "very long query past the model's 256-token window",
    "x",
]


def test_onnx_queries_match_pytorch_and_the_export_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    onnx = SentenceTransformerEmbedder(EmbedderConfig())
    torch = SentenceTransformerEmbedder(EmbedderConfig(query_runtime="torch"))
    for q in QUERIES:
        a, b = onnx.embed_query(q), torch.embed_query(q)
        assert a.shape == b.shape == (384,) and a.dtype == np.float32
        assert float(np.dot(a, b)) > 0.99999, q
    assert (onnx.query_runtime, torch.query_runtime) == ("onnx", "torch")
    exported = list((tmp_path / "models" / "onnx").glob("*.onnx"))
    assert len(exported) == 1 and not list(exported[0].parent.glob("*.tmp"))
    stamp = exported[0].stat().st_mtime_ns
    again = SentenceTransformerEmbedder(EmbedderConfig())
    again.embed_query("reuse the export")
    assert again.query_runtime == "onnx" and exported[0].stat().st_mtime_ns == stamp


def test_other_architectures_keep_pytorch(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    emb = SentenceTransformerEmbedder(EmbedderConfig())
    pooling = list(emb.model)[1]
    monkeypatch.setattr(pooling, "pooling_mode", "cls")
    with pytest.raises(OnnxUnsupported, match="mean pooling"):
        _structure(emb.model)
    caplog.set_level(logging.WARNING, logger="llmops.retrieval.embedders")
    fresh = SentenceTransformerEmbedder(EmbedderConfig(device="cpu"))
    v = fresh.embed_query("still answered")
    assert fresh.query_runtime == "torch" and v.shape == (384,)
    assert "embedded with PyTorch" in caplog.text
