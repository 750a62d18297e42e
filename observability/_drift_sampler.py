"""Samples live query texts into the drift store; embedding happens in a background thread.

The request path only decides (a random draw) and enqueues ``(ts, text, labels)`` without
waiting; a full queue drops the sample. The worker loads the embedding model on first use,
embeds in batches and appends to the store; if the model cannot load it keeps storing texts
(``llmops monitor drift`` embeds those itself) and says so once in the log.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any

from observability._config import DriftSamplingConfig
from observability._drift_store import DriftStore
from observability._embed import Embed, load_embedder, model_label
from observability._redact import Redactor

log = logging.getLogger("llmops.gateway.drift")


class DriftSampler:
    def __init__(
        self,
        config: DriftSamplingConfig,
        redactor: Redactor,
        *,
        embedder: Embed | None = None,
    ) -> None:
        self.config = config
        self.redactor = redactor
        self.store = DriftStore(config.store_dir())
        self.routes = frozenset(config.routes)
        self._embed = embedder
        self._embed_failed = False
        self._queue: queue.Queue[tuple[float, str, dict[str, Any]] | None] = queue.Queue(
            config.max_queue
        )
        self._rand = random.Random()
        self._thread: threading.Thread | None = None
        self.running = False
        self.queued = 0
        self.dropped = 0
        self.written = 0
        self.failed = 0

    def wants(self, route: str) -> bool:
        """The per-request draw (cheap): is this request sampled for drift?"""
        return (
            self.running and route in self.routes and self._rand.random() < self.config.sample_rate
        )

    def submit(self, text: str, labels: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((time.time(), text, labels))
            self.queued += 1
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        self.running = True
        self._thread = threading.Thread(target=self._run, name="llmops-drift", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            return
        self.running = False
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _embedder(self) -> Embed | None:
        if not self.config.embed or self._embed_failed:
            return None
        if self._embed is None:
            try:
                self._embed = load_embedder(self.config.embedding_model)
            except Exception as e:  # optional dependency or model missing: texts only
                self._embed_failed = True
                log.warning(
                    "drift embeddings off (%s: %s); storing texts only", type(e).__name__, e
                )
                return None
        return self._embed

    def _run(self) -> None:
        q = self._queue
        stop = False
        while not stop:
            first = q.get()
            batch = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while len(batch) < self.config.batch_size and not stop:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            try:
                if batch:
                    self._write(batch)
            except Exception:
                self.failed += len(batch)
                log.exception("writing drift samples failed")
            finally:
                for _ in range(len(batch) + (1 if stop else 0)):
                    q.task_done()

    def _write(self, batch: list[tuple[float, str, dict[str, Any]]]) -> None:
        embed = self._embedder()
        vectors = embed([t for _, t, _ in batch]) if embed is not None else None
        label = model_label(self.config.embedding_model) if vectors is not None else None
        records = []
        for i, (ts, text, labels) in enumerate(batch):
            rec: dict[str, Any] = {"ts": ts, **labels}
            if self.config.store_text and not self.redactor.drops_text:
                rec["text"] = self.redactor.text(text)
            if vectors is not None:
                rec["embedding"] = vectors[i]
                rec["emb_model"] = label
            if "text" in rec or "embedding" in rec:
                records.append(rec)
        self.written += self.store.append(records)
