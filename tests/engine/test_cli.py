"""``llmops models prepare|list`` (the Typer app in engine.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from engine._models import model_dir, write_manifest
from engine.cli import app

runner = CliRunner()


def test_list_on_an_empty_home(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--home", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "smollm2-135m-instruct" in result.output
    assert "not prepared" in result.output and "not installed" in result.output


def test_prepare_reuses_a_verified_model_and_prints_its_path(tmp_path: Path) -> None:
    folder = model_dir("smollm2-135m-instruct", tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    write_manifest(folder)
    args = ["prepare", "--home", str(tmp_path), "--python", sys.executable]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(folder)
    listed = runner.invoke(app, ["list", "--home", str(tmp_path)], env={"COLUMNS": "200"})
    assert "ready" in listed.output


def test_prepare_unknown_model_fails_clearly(tmp_path: Path) -> None:
    args = ["prepare", "gpt-17", "--home", str(tmp_path), "--python", sys.executable]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "unknown model 'gpt-17'" in result.output


def test_prepare_rejects_an_unknown_backend(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", "--backend", "tgi", "--home", str(tmp_path)])
    assert result.exit_code == 2
