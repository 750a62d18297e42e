"""Hot reload: poll the source, build a new registry off the event loop, swap it whole.

Why polling: it works the same for a git repository updated by ``git pull``/git-sync and for a
folder edited by hand, needs no inotify, and costs one ``git rev-parse`` (or a few ``stat`` calls)
per interval. A registry that fails to build is reported and never replaces the last good one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import PromptError
from ._git import Git, is_yaml
from ._registry import DEFAULT_LABELS_FILE, PromptRegistry

log = logging.getLogger("prompts.reload")


class RegistryUnavailable(PromptError):
    """No registry has loaded yet (the first load failed): HTTP 503."""

    status = 503
    type = "server_error"
    code = "prompts_unavailable"


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """What ``/readyz`` and metrics report about prompt loading."""

    loaded: bool
    ok: bool
    source: str
    commit: str | None
    prompts: int
    generation: int
    reloads_total: int
    errors_total: int
    last_error: str | None
    last_error_at: float | None
    last_reload_at: float | None
    last_check_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class RegistryReloader:
    """Holds the current registry and replaces it when the source changes.

    ``registry`` is a plain attribute read: take it once per request and use that snapshot.
    Use :meth:`for_git` or :meth:`for_directory`, then ``await start()`` (or call
    :meth:`load` synchronously at start-up and ``start()`` later).
    """

    def __init__(
        self,
        build: Callable[[PromptRegistry | None], PromptRegistry],
        fingerprint: Callable[[], Hashable],
        *,
        source: str,
        interval: float = 5.0,
        on_change: Callable[[ReloadStatus], None] | None = None,
    ) -> None:
        self._build = build
        self._fingerprint = fingerprint
        self.source = source
        self.interval = interval
        self._on_change = on_change
        self._registry: PromptRegistry | None = None
        self._seen: Hashable | None = None
        self._generation = 0
        self._reloads = 0
        self._errors = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_reload_at: float | None = None
        self._last_check_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def for_git(
        cls,
        repo: Path | str,
        ref: str = "HEAD",
        prompts_dir: str = "prompts",
        *,
        interval: float = 5.0,
        labels_file: str = DEFAULT_LABELS_FILE,
        on_change: Callable[[ReloadStatus], None] | None = None,
    ) -> RegistryReloader:
        """Reload when ``ref`` moves to another commit."""
        git = Git(repo)
        return cls(
            lambda prev: PromptRegistry.from_git(
                repo, ref, prompts_dir, labels_file=labels_file, previous=prev
            ),
            lambda: git.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False),
            source=f"git:{repo}@{ref}",
            interval=interval,
            on_change=on_change,
        )

    @classmethod
    def for_directory(
        cls,
        path: Path | str,
        *,
        interval: float = 2.0,
        labels_file: str = DEFAULT_LABELS_FILE,
        history: bool = True,
        on_change: Callable[[ReloadStatus], None] | None = None,
    ) -> RegistryReloader:
        """Reload when a YAML file in the folder is added, removed or modified."""
        folder = Path(path)

        def fingerprint() -> Hashable:
            out = []
            with contextlib.suppress(OSError):
                for f in folder.iterdir():
                    if is_yaml(f.name):
                        with contextlib.suppress(OSError):
                            st = f.stat()
                            out.append((f.name, st.st_mtime_ns, st.st_size, st.st_ino))
            return tuple(sorted(out))

        return cls(
            lambda prev: PromptRegistry.from_directory(
                folder, labels_file=labels_file, history=history, previous=prev
            ),
            fingerprint,
            source=f"dir:{folder}",
            interval=interval,
            on_change=on_change,
        )

    # state ------------------------------------------------------------------------------------

    @property
    def registry(self) -> PromptRegistry:
        """The last good registry; :class:`RegistryUnavailable` (503) before the first load."""
        reg = self._registry
        if reg is None:
            raise RegistryUnavailable(
                f"prompt registry not loaded from {self.source}: {self._last_error or 'starting'}"
            )
        return reg

    @property
    def ready(self) -> bool:
        return self._registry is not None

    def status(self) -> ReloadStatus:
        reg = self._registry
        return ReloadStatus(
            loaded=reg is not None,
            ok=self._last_error is None,
            source=self.source,
            commit=reg.commit if reg else None,
            prompts=len(reg) if reg else 0,
            generation=self._generation,
            reloads_total=self._reloads,
            errors_total=self._errors,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_reload_at=self._last_reload_at,
            last_check_at=self._last_check_at,
        )

    # loading ----------------------------------------------------------------------------------

    def load(self) -> bool:
        """Check the source and rebuild if it changed (blocking; for start-up and the CLI).

        Returns True when a new registry was swapped in.
        """
        self._last_check_at = time.time()
        try:
            fp = self._fingerprint()
        except Exception as e:
            self._fail(f"cannot read {self.source}: {e}")
            return False
        if fp == self._seen:
            return False
        try:
            new = self._build(self._registry)
        except Exception as e:
            self._seen = fp  # do not rebuild the same broken state every poll
            self._fail(str(e))
            return False
        self._seen = fp
        self._registry = new  # the atomic swap: one reference assignment
        self._generation += 1
        self._reloads += 1
        self._last_error = None
        self._last_reload_at = time.time()
        log.info(
            "prompts loaded from %s: %d prompts (commit %s)", self.source, len(new), new.commit
        )
        self._notify()
        return True

    def _fail(self, message: str) -> None:
        self._errors += 1
        self._last_error = message
        self._last_error_at = time.time()
        if self._registry is not None:
            log.error(
                "prompt reload from %s failed, keeping the last good one: %s", self.source, message
            )
        else:
            log.error("prompt load from %s failed: %s", self.source, message)
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self.status())
            except Exception:
                log.exception("prompt reload listener failed")

    async def check(self) -> bool:
        """One poll, run in a worker thread so git never blocks the event loop."""
        async with self._lock:
            return await asyncio.to_thread(self.load)

    async def start(self) -> None:
        """Load now (if not loaded) and poll every ``interval`` seconds until :meth:`stop`.

        An interval of 0 (or less) loads once and never polls: a zero sleep would spin."""
        if self._registry is None:
            await self.check()
        if self.interval <= 0:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="prompts-reloader")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # never let the poller die
                log.exception("prompt reload poll failed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
