"""Langfuse traces for gateway requests, built and exported off the request path.

The request path does two cheap things: it derives the trace id from the request id (so a trace
id can be answered in a header before forwarding, and ``/v1/feedback`` can find a trace from a
request id alone) and, when the request is over, appends the finished context to a bounded
deque. A shipper thread wakes every ``langfuse.flush_interval_s``, turns what piled up into
:class:`TraceRecord` s and hands them to the span builder:

- ``worker: process`` (default): as JSON frames to the trace worker process
  (``observability/_trace_worker.py``), which builds the spans and exports them over
  OTLP. Building and exporting are pure-Python CPU; in the gateway they competed with the
  event loop for the GIL, and the gateway paid about twice their own cost.
- ``worker: thread``: to a :class:`SpanBuilder` in the shipper thread itself (and tests, which
  capture spans in-process with OpenTelemetry's in-memory exporter).

Scores and flushes travel the same deque, so they stay in order with the traces before them.

Waking per batch rather than per request matters: a queue that notifies its consumer on every
put made each request pay a thread wake-up. A full deque drops the trace (counted); a dead or
hanging Langfuse costs the exporter retries, never a request; a dead worker is restarted.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from observability._config import RedactionConfig, TracingConfig
from observability._trace_record import TraceRecord
from observability._trace_worker import frame

log = logging.getLogger("llmops.gateway.tracing")

_TRACE_ID_MASK = (1 << 64) - 1
_RESPAWN_EVERY_S = 1.0  # at most one new worker a second


def trace_id_for(request_id: str) -> str:
    """The Langfuse trace id of a request: ``Langfuse.create_trace_id(seed=request_id)``."""
    return hashlib.sha256(request_id.encode("utf-8")).digest()[:16].hex()


def sampling_bound(rate: float) -> int:
    """OpenTelemetry's TraceIdRatioBased bound: a trace is kept when its low 64 bits are below."""
    return round(rate * (1 << 64))


def is_sampled(trace_id: str, bound: int) -> bool:
    return (int(trace_id, 16) & _TRACE_ID_MASK) < bound


@dataclass(slots=True)
class TraceHandle:
    """What the request path knows about a request's observability (``ctx.extensions["trace"]``)."""

    trace_id: str
    traced: bool
    query: str | None = None
    drift: bool = False
    admitted: float | None = None  # perf_counter when admission passed (generation start)


class Tracer:
    """One app's tracing: the request-path handoff, the shipper thread, the span builder."""

    def __init__(
        self,
        config: TracingConfig,
        redaction: RedactionConfig,
        *,
        to_record: Callable[[Any, int, float], TraceRecord | None],
        span_exporter: Any = None,
    ) -> None:
        """``to_record(finished, offset_ns, end_pc)`` reads what :meth:`submit` was handed into a
        record (None: not traced), in the shipper thread; ``offset_ns`` turns ``perf_counter``
        seconds into wall-clock nanoseconds."""
        self.config = config
        self._to_record = to_record
        self.redaction = redaction
        self.bound = sampling_bound(config.sample_rate)
        self._span_exporter = span_exporter
        # ("trace", finished, wall-clock minus perf_counter in ns, perf_counter at the end)
        # | ("score", kwargs) | ("flush", id)
        self._pending: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._builder: Any = None  # SpanBuilder, in thread mode
        self._keys: tuple[str, str, str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawned_at = 0.0
        self._flush_ids = itertools.count(1)
        self._flushed = 0
        self._flushed_cv = threading.Condition()
        self.enabled = False
        # Counters read by the metrics collector (single writer each; no lock needed).
        self.queued = 0
        self.dropped = 0
        self.built = 0
        self.failed = 0

    @property
    def worker_pid(self) -> int | None:
        """The trace worker process, when spans are built in one."""
        return self._proc.pid if self._proc is not None else None

    @property
    def in_process(self) -> bool:
        return self._span_exporter is not None or self.config.worker == "thread"

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        pk, sk, url = self.config.langfuse.resolved()
        if self.config.exporter == "otlp":
            pk, sk, url = "", "", self.config.otlp.endpoint
        elif not (pk and sk):
            log.warning(
                "tracing is enabled but LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY are not set: "
                "no traces will be sent"
            )
            return
        if self.in_process:
            from observability._span_builder import SpanBuilder

            self._builder = SpanBuilder(
                self.config, self.redaction, span_exporter=self._span_exporter
            )
            self._builder.start(pk, sk, url)
        else:
            self._keys = (pk, sk, url)
            self._spawn()
        self._thread = threading.Thread(target=self._run, name="llmops-tracing", daemon=True)
        self._thread.start()
        self.enabled = True
        where = "in-process" if self.in_process else "worker process"
        log.info(
            "%s tracing to %s at sample rate %s (%s)",
            self.config.exporter,
            url,
            self.config.sample_rate,
            where,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Hand on what is queued and shut the builder down, within ``timeout`` seconds."""
        if not self.enabled:
            return
        self.enabled = False
        self._stopping = True
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        self._wake.set()
        proc = self._proc
        if self._thread is not None:
            self._thread.join(left())
            if self._thread.is_alive() and proc is not None:
                log.warning("the trace worker stopped reading; killed")
                proc.kill()  # the shipper is blocked writing to it: this unblocks it
                self._thread.join(left())
        if self._builder is not None:
            self._builder.shutdown(left())
        if proc is not None:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()  # end of input: the worker sends what is left and exits
            try:
                proc.wait(left())
            except subprocess.TimeoutExpired:
                log.warning("the trace worker did not finish within %.0f s; killed", timeout)
                proc.kill()
                proc.wait(5)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until what was queued before is exported, scores too (tests, shutdown)."""
        if not self.enabled:
            return
        fid = next(self._flush_ids)
        self._pending.append(("flush", fid))
        self._wake.set()
        with self._flushed_cv:
            self._flushed_cv.wait_for(lambda: self._flushed >= fid, timeout)

    def _mark_flushed(self, fid: int) -> None:
        with self._flushed_cv:
            self._flushed = max(self._flushed, fid)
            self._flushed_cv.notify_all()

    # --- request path -----------------------------------------------------------------------
    def submit(self, finished: Any) -> None:
        """Hand a finished request to the shipper (called by the observer; never blocks)."""
        if not self.enabled:
            return
        if len(self._pending) >= self.config.max_queue:
            self.dropped += 1
            return
        now_ns, now_pc = time.time_ns(), time.perf_counter()
        self._pending.append(("trace", finished, now_ns - int(now_pc * 1e9), now_pc))
        self.queued += 1

    def score(
        self,
        *,
        trace_id: str,
        name: str,
        value: float | str,
        comment: str | None = None,
        data_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a Langfuse score (sent in the background). Returns its id."""
        score_id = hashlib.sha256(f"{trace_id}\x00{name}\x00{time.time_ns()}".encode()).hexdigest()
        score = {
            "name": name,
            "value": value,
            "trace_id": trace_id,
            "score_id": score_id[:32],
            "data_type": data_type,
            "comment": comment,
            "metadata": metadata,
        }
        self._pending.append(("score", score))
        self._wake.set()
        return score_id[:32]

    # --- shipper thread ---------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.config.langfuse.flush_interval_s
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        pending = self._pending
        records: list[TraceRecord] = []
        while pending:
            item = pending.popleft()
            kind = item[0]
            if kind == "trace":
                try:
                    rec = self._to_record(*item[1:])
                except Exception:
                    self.failed += 1
                    log.exception("reading a finished request for its trace failed")
                    rec = None
                if rec is not None:
                    records.append(rec)
                if len(records) >= self.config.langfuse.flush_at:
                    self._hand_on(records)
                    records = []
                continue
            self._hand_on(records)  # keep the order: traces before a later score or flush
            records = []
            builder = self._builder
            if kind == "score":
                if builder is not None:
                    builder.score(**item[1])  # the SDK queues it for its own thread
                else:
                    self._send({"op": "score", "score": item[1]}, 0)
            elif builder is not None:
                builder.flush()
                self._mark_flushed(item[1])
            else:
                self._send({"op": "flush", "id": item[1]}, 0)
        self._hand_on(records)

    def _hand_on(self, records: list[TraceRecord]) -> None:
        if not records:
            return
        builder = self._builder
        if builder is None:
            self._send({"op": "traces", "records": [r.to_json() for r in records]}, len(records))
            return
        built, failed = builder.build_all(records)
        self.built += built
        self.failed += failed
        if not builder.export():
            log.warning("%d traces could not be delivered to Langfuse", built)

    # --- the worker process -----------------------------------------------------------------
    def _spawn(self) -> None:
        assert self._keys is not None
        self._spawned_at = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "observability._trace_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        init = {
            "op": "init",
            "tracing": self.config.model_dump(mode="json"),
            "redaction": self.redaction.model_dump(mode="json"),
            "keys": list(self._keys),
        }
        proc.stdin.write(frame(init))
        proc.stdin.flush()
        self._proc = proc
        threading.Thread(
            target=self._read_answers,
            args=(proc.stdout,),
            name="llmops-tracing-answers",
            daemon=True,
        ).start()

    def _read_answers(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if "built" in msg:
                self.built += int(msg["built"])
                self.failed += int(msg.get("failed", 0))
            elif "flushed" in msg:
                self._mark_flushed(int(msg["flushed"]))

    def _send(self, msg: dict[str, Any], n_records: int) -> None:
        """Write one frame to the worker (this thread may block; the request path never)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if self._stopping or time.monotonic() - self._spawned_at < _RESPAWN_EVERY_S:
                self.dropped += n_records
                return
            log.warning(
                "the trace worker exited (%s); starting a new one", proc and proc.returncode
            )
            self._spawn()
            proc = self._proc
            assert proc is not None
        try:
            assert proc.stdin is not None
            proc.stdin.write(frame(msg))
            proc.stdin.flush()
        except (OSError, ValueError):
            self.dropped += n_records
