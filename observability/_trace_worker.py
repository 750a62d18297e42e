"""The trace worker process: builds the gateway's Langfuse spans and exports them.

Span building and the SDK's export (protobuf encoding, Langfuse's span transform, HTTP) are
pure-Python CPU. In a thread of the gateway they took the GIL from the event loop; here they
run beside it. The gateway (:class:`observability._tracing.Tracer`) starts this process
and writes length-prefixed JSON frames to its stdin:

- ``{"op": "init", "tracing": ..., "redaction": ..., "keys": [public, secret, url]}`` (first);
- ``{"op": "traces", "records": [TraceRecord, ...]}``;
- ``{"op": "score", "score": {...}}`` (``Langfuse.create_score`` arguments);
- ``{"op": "flush", "id": N}``: export everything, then answer ``{"flushed": N}``.

It answers JSON lines on stdout (``{"built": n, "failed": m}`` per traces frame). End of
input (the gateway stopped, or died) makes it flush, shut the SDK down and exit. It runs in its
own session, so a Ctrl-C on the gateway's terminal stops the gateway, which then ends this.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import struct
import sys
from collections.abc import Iterator
from typing import IO, Any

import orjson

log = logging.getLogger("llmops.gateway.trace_worker")

_HEAD = struct.Struct(">I")


def frame(msg: dict[str, Any]) -> bytes:
    """One message as the worker reads it."""
    data = orjson.dumps(msg, default=str)
    return _HEAD.pack(len(data)) + data


def read_frames(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    while True:
        head = stream.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return
        (n,) = _HEAD.unpack(head)
        body = stream.read(n)
        if len(body) < n:
            return
        yield orjson.loads(body)


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    from observability._config import RedactionConfig, TracingConfig
    from observability._span_builder import SpanBuilder

    frames = read_frames(inp)
    init = next(frames, None)
    if not init or init.get("op") != "init":
        log.error("the trace worker got no init frame")
        return 2
    config = TracingConfig.model_validate(init["tracing"])
    builder = SpanBuilder(config, RedactionConfig.model_validate(init["redaction"]))
    builder.start(*init["keys"])
    gc.collect()
    gc.freeze()  # the SDK's import heap lives as long as this process: keep it out of full GCs

    def answer(**msg: Any) -> None:
        out.write(orjson.dumps(msg) + b"\n")
        out.flush()

    try:
        for msg in frames:
            op = msg.get("op")
            if op == "traces":
                built, failed = builder.build_all(msg["records"])
                answer(built=built, failed=failed)  # before the export, which may hang
                if not builder.export():
                    log.warning("%d traces could not be delivered to Langfuse", built)
            elif op == "score":
                builder.score(**msg["score"])
            elif op == "flush":
                builder.flush()
                answer(flushed=msg["id"])
    except BrokenPipeError:
        pass  # the gateway is gone; still hand the SDK what was built
    finally:
        builder.shutdown(config.langfuse.timeout_s)
    return 0


def main() -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when this ends
    with contextlib.suppress(OSError):
        # Tracing is background work: the gateway's event loop goes first when the CPUs are
        # busy (it preempts this process rather than the other way round).
        os.nice(10)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    raise SystemExit(main())
