"""Run the real gateway app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import uvicorn

from gateway import GatewayConfig
from gateway._app import GatewayApp, Plugin
from tests.fakes.openai_upstream import free_port


class GatewayServer:
    def __init__(self, config: GatewayConfig, plugins: list[Plugin] | None = None) -> None:
        self.port = free_port()
        self.gw = GatewayApp(config, plugins)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.gw.app, host="127.0.0.1", port=self.port, log_level="warning",
                lifespan="on", access_log=False,
            )
        )  # fmt: skip
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> GatewayServer:
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("gateway failed to start")
            time.sleep(0.02)
        raise TimeoutError("gateway did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics").text

    def metric_value(self, name: str, **labels: Any) -> float:
        """Sum of samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for fam in text_string_to_metric_families(self.metrics()):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items()):
                    total += s.value
        return total
