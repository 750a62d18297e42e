"""Fault-injecting extensions of the fake vLLM server, and real-process helpers.

``SlowUpstream`` adds service latency, stream stalls and a vLLM-style ``/metrics``;
``ReplicaProcess``/``GatewayProcess``/``RedisProcess`` run real processes that tests kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.fakes.openai_upstream import FakeUpstream, free_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


@dataclass
class SlowUpstream(FakeUpstream):
    """Extra modes: ``stall_headers`` (headers sent, then silence), ``stall_mid`` (two chunks,
    then silence). ``latency_s`` delays every answer; ``waiting`` is reported as
    ``vllm:num_requests_waiting``; ``active``/``peak`` count concurrent requests and
    ``metrics_hits`` the scrapes of ``/metrics``."""

    latency_s: float = 0.0
    waiting: int = 0
    metrics_hits: int = 0
    active: int = 0
    peak: int = 0

    async def _fault(self) -> web.StreamResponse | None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            return await super()._fault()
        finally:
            self.active -= 1

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, chat: bool
    ) -> web.StreamResponse:
        if self.mode not in ("stall_headers", "stall_mid"):
            return await super()._stream(request, body, text, chat)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        if self.mode == "stall_mid":
            for i in range(2):
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}
                    ],
                }
                await resp.write(b"data: " + __import__("orjson").dumps(chunk) + b"\n\n")
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await asyncio.sleep(3600)
        return resp

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics_hits += 1
        text = (
            "# HELP vllm:num_requests_waiting Requests waiting.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="m"}} {float(self.waiting)}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 << 20)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app


def wait_port(port: int, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class _Proc:
    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a crashed process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0])


class RedisProcess(_Proc):
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)
        return self


class ReplicaProcess(_Proc):
    """A fake vLLM replica in its own process (``python -m tests.reliability.replica_main``)."""

    def __init__(self, name: str, **opts: Any) -> None:
        self.name, self.opts, self.port = name, opts, free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ReplicaProcess:
        args = [
            PY,
            "-m",
            "tests.reliability.replica_main",
            "--name",
            self.name,
            "--port",
            str(self.port),
        ]
        for k, v in self.opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, cwd=ROOT)
        wait_port(self.port, 30, self.proc)
        return self


class GatewayProcess(_Proc):
    """The gateway as a real uvicorn process (``python -m tests.reliability.gateway_main``)."""

    def __init__(self, config: dict[str, Any], tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.config_path = tmp / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> GatewayProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "tests.reliability.gateway_main",
                    str(self.config_path),
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port, timeout, self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        raise TimeoutError("gateway did not become healthy")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
