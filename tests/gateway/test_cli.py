"""`llmops serve` helpers and `llmops keys`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from gateway import hash_key, load_config
from gateway.cli import ready_banner
from llmops.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_ready_banner_commands_are_valid() -> None:
    banner = ready_banner(load_config(REPO / "config" / "gateway.yaml"))
    assert "http://127.0.0.1:8000" in banner
    curl = banner[banner.index("curl") :].split("\n\n")[0].replace("\\\n", " ")
    body = shlex.split(curl)[shlex.split(curl).index("-d") + 1]
    assert json.loads(body)["model"] == "default"
    py = re.search(r"python -c '(.*)'", banner)
    assert py is not None
    compile(py.group(1), "<banner>", "exec")


def test_keys_new_prints_a_key_and_its_digest() -> None:
    out = CliRunner().invoke(app, ["keys", "new", "ci"]).output
    key = re.search(r"(sk-llmops-\S+)", out)
    assert key is not None
    assert f"sha256: {hash_key(key.group(1))}" in out


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: x\n")  # no upstreams, no engine
    res = CliRunner().invoke(app, ["serve", "--config", str(bad)])
    assert res.exit_code == 2
    assert "needs 'upstreams'" in res.output
