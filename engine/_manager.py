"""EngineManager: one local vLLM OpenAI server as a supervised subprocess.

Starts the engine from its own venv in its own process group, streams its output to
``$LLMOPS_HOME/logs/engine-NAME.log``, waits for ``/health`` (with a rich progress display on a
TTY), restarts it when it dies or stops answering, and stops the whole group with the gateway.
Nothing here blocks the event loop: installs and conversions run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from common import llmops_home
from engine._command import build_command, build_env
from engine._models import resolve_model
from engine._procs import die_with_parent_hook, group_members, signal_group
from engine._spec import EngineSpec
from engine._venv import engine_python, tail_text

log = logging.getLogger(__name__)

_LOG_ROTATE_BYTES = 50 * 1024 * 1024
_HEALTH_INTERVAL_S = 10.0
_HEALTH_FAILURES_BEFORE_KILL = 6
_BACKOFF_MAX_S = 60.0
_STABLE_AFTER_S = 120.0


class EngineStartError(RuntimeError):
    """The engine did not become healthy; the message carries the end of its log."""


class EngineManager:
    """Supervise one vLLM server for gateway model ``name`` (served as ``served_name``)."""

    def __init__(
        self,
        name: str,
        served_name: str,
        spec: EngineSpec,
        home: Path | str | None = None,
        *,
        progress: bool | None = None,
    ) -> None:
        self.name = name
        self.served_name = served_name
        self.spec = spec
        self.home = llmops_home(home)
        self.log_path = self.home / "logs" / f"engine-{name}.log"
        self.restarts = 0
        self._progress = sys.stderr.isatty() if progress is None else progress
        self._cmd: list[str] | None = None
        self._env: dict[str, str] | None = None
        self._port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._watch_task: asyncio.Task[None] | None = None
        self._exit_task: asyncio.Task[int] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._start_lock = asyncio.Lock()

    # -- public -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the engine (OpenAI API under ``/v1``)."""
        if self._port is None:
            raise RuntimeError(f"engine {self.name} has not been started")
        return f"http://{self.spec.host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """PID of the api_server (also its process-group id), None when not running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def ready(self) -> bool:
        """True while the engine answers ``/health``."""
        return self._ready.is_set()

    @property
    def command(self) -> list[str] | None:
        return None if self._cmd is None else list(self._cmd)

    async def start(self) -> str:
        """Prepare (venv, model), launch, wait for ``/health``; return the base URL."""
        async with self._start_lock:
            if self._proc is not None and self._proc.returncode is None and self.ready:
                return self.base_url
            self._stopping = False
            python, model, local = await asyncio.to_thread(self._prepare)
            self._env = build_env(self.spec, home=self.home, python=python, model_is_local=local)
            self._session = aiohttp.ClientSession()
            # A free port picked now may be taken by the time vLLM binds it (a minute later):
            # with an automatic port, one such failure is retried on another port.
            attempts = 1 if self.spec.port else 2
            for attempt in range(1, attempts + 1):
                self._port = self.spec.port or _free_port(self.spec.host)
                self._cmd = build_command(
                    self.spec,
                    python=python,
                    model=model,
                    served_name=self.served_name,
                    port=self._port,
                )
                try:
                    await self._spawn()
                    await self._wait_healthy(show=self._progress)
                    break
                except EngineStartError as exc:
                    await self._kill_group()
                    if attempt < attempts and "address already in use" in str(exc).lower():
                        log.warning("engine %s: port %s taken, retrying", self.name, self._port)
                        continue
                    await self._close_session()
                    raise
                except BaseException:
                    await self._kill_group()
                    await self._close_session()
                    raise
            self._watch_task = asyncio.create_task(self._watch(), name=f"engine-watch-{self.name}")
            return self.base_url

    async def wait_ready(self) -> str:
        """Wait until the engine is healthy again (e.g. after a restart); wrap in a timeout."""
        await self._ready.wait()
        return self.base_url

    async def stop(self) -> None:
        """SIGTERM the engine's process group, SIGKILL after ``stop_grace_s``; idempotent."""
        self._stopping = True
        self._ready.clear()
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._kill_group(grace=self.spec.stop_grace_s)
        await self._close_session()

    async def __aenter__(self) -> EngineManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals ----------------------------------------------------------------------
    def _prepare(self) -> tuple[Path, str, bool]:
        python = engine_python(self.spec, self.home)
        model, local = resolve_model(self.spec.model, self.home, python=python)
        return python, model, local

    async def _spawn(self) -> None:
        assert self._cmd is not None and self._env is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        self._ready.clear()
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"\n=== {stamp} llmops starts: {' '.join(self._cmd)}\n".encode())
            log_file.flush()
            # Spawned from the event-loop thread (PDEATHSIG is tied to the forking thread).
            self._proc = await asyncio.create_subprocess_exec(
                *self._cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,  # own process group: one signal reaches every worker
                preexec_fn=die_with_parent_hook(),
            )
        # One waiter per process: polling with fresh wait() calls would pile up tasks.
        self._exit_task = asyncio.create_task(self._proc.wait(), name=f"engine-exit-{self.name}")
        log.info("engine %s started, pid %s, log %s", self.name, self._proc.pid, self.log_path)

    async def _exited_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the engine process to exit, without cancelling the waiter."""
        task = self._exit_task
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=seconds)
        return bool(done)

    async def _health_ok(self, limit_s: float = 2.0) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(
                f"{self.base_url}/health", timeout=aiohttp.ClientTimeout(total=limit_s)
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _wait_healthy(self, *, show: bool) -> None:
        proc = self._proc
        assert proc is not None
        started = time.monotonic()
        deadline = started + self.spec.startup_timeout_s
        status: Any = None
        if show:
            from common import cli_console

            status = cli_console(stderr=True).status(f"starting engine {self.name}")
            status.start()
        next_note = started + 15.0
        try:
            while True:
                if proc.returncode is not None:
                    raise EngineStartError(
                        f"engine {self.name} exited with code {proc.returncode} during start-up."
                        f" Last lines of {self.log_path}:\n{tail_text(self.log_path)}"
                    )
                if await self._health_ok():
                    self._ready.set()
                    log.info(
                        "engine %s ready at %s after %.1f s",
                        self.name,
                        self.base_url,
                        time.monotonic() - started,
                    )
                    return
                now = time.monotonic()
                if now > deadline:
                    raise EngineStartError(
                        f"engine {self.name} not healthy after {self.spec.startup_timeout_s:.0f} s."
                        f" Last lines of {self.log_path}:\n{tail_text(self.log_path)}"
                    )
                if status is not None:
                    from rich.markup import escape

                    last = escape(tail_text(self.log_path, 1)[-100:])  # log lines hold [brackets]
                    status.update(
                        f"starting engine {self.name} ({now - started:.0f} s): [dim]{last}"
                    )
                elif now >= next_note:
                    log.info("engine %s starting (%.0f s)", self.name, now - started)
                    next_note = now + 15.0
                await self._exited_within(0.5)
        finally:
            if status is not None:
                status.stop()

    async def _watch(self) -> None:
        """Restart the engine when it exits or stops answering, with exponential backoff."""
        backoff = 1.0
        up_since = time.monotonic()
        while not self._stopping:
            await self._wait_exit_or_hang()
            if self._stopping:
                return
            self._ready.clear()
            await self._kill_group()  # stragglers of the old group hold memory and the port
            if not self.spec.restart:
                log.error("engine %s died; restart disabled", self.name)
                return
            if time.monotonic() - up_since > _STABLE_AFTER_S:
                backoff = 1.0
            log.warning("engine %s died; restarting in %.0f s", self.name, backoff)
            await asyncio.sleep(backoff)
            try:
                await self._spawn()
                await self._wait_healthy(show=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("engine %s restart failed: %s", self.name, exc)
                await self._kill_group()
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            self.restarts += 1
            up_since = time.monotonic()

    async def _wait_exit_or_hang(self) -> None:
        proc = self._proc
        assert proc is not None
        failures = 0
        while proc.returncode is None:
            await self._exited_within(_HEALTH_INTERVAL_S)
            if proc.returncode is not None or self._stopping:
                return
            if await self._health_ok(limit_s=5.0):
                failures = 0
                self._ready.set()
                continue
            failures += 1
            self._ready.clear()
            if failures >= _HEALTH_FAILURES_BEFORE_KILL:
                log.error("engine %s stopped answering /health; killing it", self.name)
                signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
                return

    async def _kill_group(self, grace: float = 0.0) -> None:
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid
        if grace > 0 and signal_group(pgid, signal.SIGTERM):
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not await asyncio.to_thread(group_members, pgid):
                    break
                await asyncio.sleep(0.2)
        signal_group(pgid, signal.SIGKILL)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        # Members re-parented elsewhere may take a moment to disappear after SIGKILL.
        for _ in range(50):
            if not await asyncio.to_thread(group_members, pgid):
                break
            await asyncio.sleep(0.1)

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


__all__ = ["EngineManager", "EngineStartError"]
