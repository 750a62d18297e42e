"""Run a fake vLLM replica as its own process, until SIGTERM/SIGKILL."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.reliability.fakes import SlowUpstream


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="r")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--latency-s", type=float, default=0.0)
    ap.add_argument("--stream-chunks", type=int, default=5)
    ap.add_argument("--chunk-delay-s", type=float, default=0.0)
    a = ap.parse_args()
    up = SlowUpstream(
        name=a.name,
        port=a.port,
        mode=a.mode,
        latency_s=a.latency_s,
        stream_chunks=a.stream_chunks,
        chunk_delay_s=a.chunk_delay_s,
    )
    up.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    up.stop()


if __name__ == "__main__":
    main()
