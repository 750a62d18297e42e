"""Query embeddings on ONNX Runtime: the sentence-transformers model (its transformer, mean
pooling and normalisation) exported once to one ONNX graph with ``torch.onnx.export``, then run
with ``onnxruntime`` and the model's own fast tokenizer. Same vectors as PyTorch (cosine
>= 0.9999999), about 3x faster for one short query on CPU, where most of a search's latency is
the query embedding. Documents stay on PyTorch (batched, where it is as fast).

The export is cached under ``<home>/models/onnx/``, keyed by the model folder's files and the
torch version, written aside and renamed into place (processes may race to export; either
copy is the same). Only the architecture it reproduces exactly is exported: a Transformer
with mean pooling, optionally normalised; anything else keeps PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("llmops.retrieval.onnx")


class OnnxUnsupported(Exception):
    """This model cannot be reproduced exactly by the export (another pooling, no tokenizer)."""


def _structure(st: Any) -> tuple[Any, bool, Path]:
    """(the transformer module, whether it normalises, the tokenizer.json) or raise."""
    mods = list(st)
    kinds = [type(m).__name__ for m in mods]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise OnnxUnsupported(f"modules {kinds}")
    pool = mods[1]
    mode = getattr(pool, "pooling_mode", None)  # sentence-transformers >= 6: one string
    if mode is None:  # earlier releases: one flag per mode
        flags = [k for k, v in vars(pool).items() if k.startswith("pooling_mode_") and v is True]
        mode = "mean" if flags == ["pooling_mode_mean_tokens"] else ",".join(flags)
    if mode != "mean":
        raise OnnxUnsupported(f"pooling is not mean pooling ({mode})")
    tok_dir = Path(getattr(mods[0].tokenizer, "name_or_path", ""))
    tok = tok_dir / "tokenizer.json"
    if not tok.is_file():
        raise OnnxUnsupported(f"no tokenizer.json in {tok_dir}")
    return mods[0], len(mods) == 3, tok


def cache_key(model_dir: Path) -> str:
    import torch

    h = hashlib.sha256(torch.__version__.encode())
    for p in sorted(model_dir.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(model_dir)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def export(st: Any, dest: Path) -> None:
    """Trace the model into ``dest`` (dynamic batch and sequence axes, opset 17)."""
    import torch

    transformer, normalise, _ = _structure(st)
    hf = transformer.auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.hf(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state  # fmt: skip
            m = attention_mask.unsqueeze(-1).to(out.dtype)
            emb = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, p=2, dim=1) if normalise else emb

    ex = st.tokenize(["an example query for tracing"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if "token_type_ids" not in ex:
        ex["token_type_ids"] = torch.zeros_like(ex["input_ids"])
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "seq"} for n in names}
    axes["embedding"] = {0: "batch"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    try:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on masking code paths
            torch.onnx.export(Encoder().eval(), tuple(ex[n] for n in names), str(tmp),
                              input_names=names, output_names=["embedding"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)  # fmt: skip
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class OnnxQueryEncoder:
    def __init__(self, st: Any, model_dir: Path, cache_dir: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        _, _, tok_file = _structure(st)
        path = cache_dir / f"{model_dir.name}-{cache_key(model_dir)}.onnx"
        if not path.is_file():
            log.info("exporting the query encoder of %s to %s", model_dir, path)
            export(st, path)
        self.path = path
        self._tok = Tokenizer.from_file(str(tok_file))
        self._tok.no_padding()  # tokenizer.json may ship fixed padding; one query needs none
        self._tok.enable_truncation(int(st.max_seq_length))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # ORT's idle threads spin by default; on a small CPU that starves the vector
        # search and the event loop that run right after the embedding.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        with self._lock:  # the tokenizer's truncation state is shared
            enc = self._tok.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        return np.asarray(self._session.run(["embedding"], feed)[0][0], dtype=np.float32)
