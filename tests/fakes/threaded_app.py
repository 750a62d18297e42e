"""Real loopback HTTP servers for tests: an aiohttp app on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, ClassVar, Self

from aiohttp import web


class ThreadedApp:
    """Subclasses define ``port`` and ``build_app()``; ``start()``/``stop()`` run the server.

    The server is real TCP on 127.0.0.1, so the gateway under test reaches it exactly as it
    reaches a vLLM replica; its own loop keeps it independent of the test's loop.
    """

    port: int
    shutdown_timeout: ClassVar[float] = 60.0
    _loop: asyncio.AbstractEventLoop | None
    _runner: web.AppRunner | None
    _thread: threading.Thread | None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runner = web.AppRunner(
                    self.build_app(), handle_signals=False, shutdown_timeout=self.shutdown_timeout
                )
                self._runner = runner
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
                loop.run_until_complete(site.start())
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError(f"{type(self).__name__} failed to start") from failure[0]
        return self

    def stop(self) -> None:
        loop: Any = getattr(self, "_loop", None)
        if loop is None:
            return
        runner = getattr(self, "_runner", None)
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(5)
        self._loop = None
