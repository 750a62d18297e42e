"""Serve the gateway as ``llmops serve`` does, with this area's plugins, for process tests.

Kept here until the lead wires ``limits_plugin``/``admin_plugin``/``edge_plugin`` and the
bounded header protocol into ``gateway/_plugins.py`` and ``gateway/cli.py``.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from gateway._admin import admin_plugin
from gateway._app import GatewayApp
from gateway._config import load_config
from gateway.limits import edge_plugin, limits_plugin
from gateway.limits._edge import bounded_httptools


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(a.config)
    gw = GatewayApp(cfg, [edge_plugin, limits_plugin, admin_plugin])
    uvicorn.run(
        gw.app,
        host="127.0.0.1",
        port=a.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http=bounded_httptools(cfg.server.max_header_bytes),
        timeout_graceful_shutdown=15,
    )


if __name__ == "__main__":
    main()
