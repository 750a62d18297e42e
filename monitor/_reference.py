"""Reference samples for drift: what the evals covered (a suite or its JSONL dataset), or a
sample of live traffic saved earlier (``llmops monitor snapshot``, an ``.npz``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import question_in


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    texts: list[str]
    embeddings: np.ndarray | None = None  # set for saved samples
    embedding_model: str | None = None


def case_question(obj: dict[str, Any]) -> str | None:
    """The query of one dataset line: a question-like template variable, else the last user
    message, else a top-level text field (the eval harness reads cases the same way)."""
    variables = obj.get("vars")
    if isinstance(variables, dict):
        found = question_in(variables)
        if found is not None:
            return found
    messages = obj.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if (
                isinstance(m, dict)
                and m.get("role") == "user"
                and isinstance(m.get("content"), str)
            ):
                return str(m["content"])
    found = question_in(obj)
    if found is not None:
        return found
    return question_in(variables, join_others=True) if isinstance(variables, dict) else None


def read_jsonl(path: Path) -> list[str]:
    texts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON: {e}") from None
        q = case_question(obj) if isinstance(obj, dict) else (obj if isinstance(obj, str) else None)
        if q:
            texts.append(q)
    return texts


def _suite_dataset(path: Path) -> Path:
    """The dataset a suite YAML names, resolved like the eval harness (file dir, then cwd)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    ds = data.get("dataset") if isinstance(data, dict) else None
    if isinstance(ds, dict):
        ds = ds.get("path")
    if not isinstance(ds, str):
        raise ValueError(f"{path}: the suite names no dataset")
    for base in (path.parent, Path.cwd(), path.parent.parent.parent):
        candidate = (base / ds).resolve()
        if candidate.is_file():
            return candidate
    raise ValueError(f"{path}: dataset {ds!r} not found")


def _suite_texts(path: Path) -> list[str]:
    try:  # the eval harness knows its own suites best; its absence is not fatal
        from evals import load_dataset, load_suite

        suite = load_suite(path)
        var = getattr(suite, "question_var", None)
        return [c.question(var) for c in load_dataset(suite)]
    except ImportError:
        return read_jsonl(_suite_dataset(path))


def load_reference(spec: str) -> Reference:
    """A suite (``.yaml``), a dataset (``.jsonl``) or a saved sample (``.npz``)."""
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"reference {spec!r} is not a file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            emb = np.asarray(z["embeddings"], dtype=np.float32)
            texts = [str(t) for t in z["texts"]] if "texts" in z.files else []
            model = str(z["model"]) if "model" in z.files else None
        return Reference(path.stem, texts, emb, model)
    if suffix in (".yaml", ".yml"):
        texts = _suite_texts(path)
    elif suffix in (".jsonl", ".json"):
        texts = read_jsonl(path)
    else:
        raise ValueError(f"reference {spec!r}: expected .yaml (suite), .jsonl or .npz")
    if not texts:
        raise ValueError(f"reference {spec!r} holds no query texts")
    return Reference(path.stem, texts)


def save_reference(path: Path, embeddings: np.ndarray, texts: list[str], model: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        embeddings=embeddings.astype(np.float32),
        texts=np.array(texts, dtype=str),
        model=np.array(model),
    )
