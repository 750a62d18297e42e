"""`pip install .` with no extras serves: the gateway image needs no numpy, torch or Qdrant.

Builds a fresh virtualenv with the core dependencies only (from a copy of this checkout, so the
source tree gets no build folders), then runs the real `llmops serve` against a fake upstream
and proxies a chat completion with the official SDK. Heavy features in that venv must fail with
a message naming the extra to install, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream, free_port

ROOT = Path(__file__).resolve().parents[2]
_SKIP_DIRS = {".venv", ".git", "build", "dist", "bench", "tests", "deploy", "docs"}


def _copy_source(dst: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        out = {n for n in names if n in {"__pycache__", ".mypy_cache", ".ruff_cache"}}
        out |= {n for n in names if n.endswith(".egg-info")}
        if Path(folder) == ROOT:
            out |= {n for n in names if n in _SKIP_DIRS or n.startswith(".")}
        return out

    shutil.copytree(ROOT, dst, ignore=ignore)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("core")
    src, venv = base / "src", base / "venv"
    _copy_source(src)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    yield venv


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env["PYTHONPATH"] = ""
    return env


def test_core_venv_has_no_heavy_packages(core_venv: Path) -> None:
    py = str(core_venv / "bin" / "python")
    for mod in ("numpy", "torch", "qdrant_client", "sentence_transformers", "langfuse", "ragas"):
        r = subprocess.run([py, "-c", f"import {mod}"], capture_output=True, env=_env(), cwd="/")
        assert r.returncode != 0, f"{mod} is installed by the core dependencies"


def test_core_install_serves(core_venv: Path, tmp_path: Path) -> None:
    upstream = FakeUpstream(name="remote").start()
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        "auth: {enabled: false}\n"
        "models:\n"
        "  - name: remote-model\n"
        "    aliases: [default]\n"
        f"    upstreams: [{{url: '{upstream.url}/v1'}}]\n"
    )
    proc = subprocess.Popen(
        [str(core_venv / "bin" / "llmops"), "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=str(tmp_path),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the core-only gateway did not become ready")
        client = openai.OpenAI(base_url=base + "/v1", api_key="none")
        out = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}]
        )
        assert out.choices[0].message.content
        assert upstream.requests[-1]["model"] == "remote-model"
    finally:
        proc.terminate()
        proc.wait(20)
        upstream.stop()


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["ingest", "{doc}", "-c", "kb"], "retrieval"),
        (["search", "-c", "kb", "hello"], "retrieval"),
        (["eval", "run", "{doc}"], "evals"),
        (["monitor", "drift"], "observability"),
    ],
)
def test_heavy_commands_name_their_extra(
    core_venv: Path, tmp_path: Path, args: list[str], extra: str
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# hello\n\nworld\n")
    argv = [a.replace("{doc}", str(doc)) for a in args]
    env = {**_env(), "LLMOPS_HOME": str(tmp_path / "home")}
    r = subprocess.run(
        [str(core_venv / "bin" / "llmops"), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Traceback" not in out, out
    assert f"pip install 'llmops[{extra}]'" in out, out
