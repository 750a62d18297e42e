"""A stand-in for vLLM's api_server, used only by the fast manager unit tests.

It parses the same flags, spawns a worker child (as vLLM does with its engine core) and answers
/health, so process supervision (group kill, restart, start-up failure) is tested in
seconds. The real engine is exercised by the tests marked ``engine``.
Env knobs: FAKE_ENGINE_FAIL=1 exits at once; FAKE_ENGINE_DELAY=S waits before listening;
FAKE_ENGINE_BUSY_ONCE=FILE fails once as if the port were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args, _unknown = parser.parse_known_args()
    print(f"fake engine argv: {sys.argv[1:]}", flush=True)
    if os.environ.get("FAKE_ENGINE_FAIL"):
        print("fake engine: simulated start-up failure", flush=True)
        sys.exit(3)
    busy_once = os.environ.get("FAKE_ENGINE_BUSY_ONCE")
    if busy_once and not os.path.exists(busy_once):
        open(busy_once, "w").close()
        print("OSError: [Errno 98] Address already in use", flush=True)
        sys.exit(1)
    time.sleep(float(os.environ.get("FAKE_ENGINE_DELAY", "0")))
    # A worker that ignores SIGTERM, so only a group SIGKILL removes it.
    subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
        ]
    )
    name = args.served_model_name

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                body = b""
            elif self.path == "/v1/models":
                body = json.dumps({"object": "list", "data": [{"id": name}]}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
