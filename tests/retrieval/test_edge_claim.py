"""One process per collection on the embedded engine, claimed before the engine opens the files.
Without the claim, a second process that tries to open a collection open elsewhere fails on
the engine's lock only after rewriting part of its files, and the first process's next flush
fails on a truncated journal: this is that sequence, with a real second process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from retrieval import RetrievalConfig, Retriever, StoreBusyError, StoreConfig
from retrieval._edge_store import EdgeStore

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
_OTHER = """
import sys
from pathlib import Path
from retrieval import StoreBusyError
from retrieval._edge_store import EdgeStore
try:
    EdgeStore(Path(sys.argv[1])).sources("kb")
except StoreBusyError as exc:
    print("busy:", exc)
"""


def test_a_second_process_is_refused_and_the_first_keeps_writing(tmp_path: Path, embedder) -> None:
    pages = FIXTURES / "pydocs" / "library"
    edge = tmp_path / "edge"
    r = Retriever(RetrievalConfig(home=tmp_path, store=StoreConfig(path=str(edge))),
                  embedder=embedder)  # fmt: skip
    try:
        r.ingest([str(pages / "hmac.rst")], "kb")
        other = subprocess.run(
            [sys.executable, "-c", _OTHER, str(edge)], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True,
        )  # fmt: skip
        assert "busy:" in other.stdout and "open in another process" in other.stdout, (
            other.stdout + other.stderr)  # fmt: skip
        # In this process too, a second store on the same folder is refused.
        second = EdgeStore(edge)
        try:
            second.sources("kb")
            raise AssertionError("a second store opened a claimed collection")
        except StoreBusyError:
            pass
        finally:
            second.close()
        for name in ("fnmatch.rst", "copy.rst"):  # each ingest ends with a flush
            r.ingest([str(pages / name)], "kb")
        assert {Path(s).name for s in r.store.sources("kb")} == {
            "hmac.rst", "fnmatch.rst", "copy.rst"}  # fmt: skip
    finally:
        r.close()
    # Closed, the claim is gone: another store opens it.
    again = EdgeStore(edge)
    try:
        assert len(again.sources("kb")) == 3
    finally:
        again.close()
