"""A gateway process with a local engine, for the signal tests: `python _gateway_driver.py
PIDFILE PORT`. It runs uvicorn (which handles SIGINT/SIGTERM) like ``llmops serve`` does and
writes the engine's process-group id to PIDFILE once the engine is healthy."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from gateway import GatewayConfig
from gateway._app import GatewayApp


def main() -> None:
    pidfile, port = Path(sys.argv[1]), int(sys.argv[2])
    cfg = GatewayConfig(
        auth={"enabled": False},
        models=[{"name": "smollm2", "engine": {"startup_timeout_s": 900, "stop_grace_s": 15}}],
        prompts=None,
    )
    gw = GatewayApp(cfg)
    gw.startup.append(lambda: pidfile.write_text(str(gw.engines[0].pid)))
    uvicorn.run(gw.app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
