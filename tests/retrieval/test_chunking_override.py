"""A chunking given for one ingest (the vector store API's static strategy) replaces the
config's for those files only."""

from __future__ import annotations

from pathlib import Path

from retrieval import ChunkingConfig, RetrievalConfig, Retriever, StoreConfig

DOC = Path(__file__).parent / "fixtures" / "pydocs" / "library" / "copy.rst"


def test_chunking_for_one_ingest(tmp_path: Path) -> None:
    r = Retriever(RetrievalConfig(home=tmp_path, store=StoreConfig(path=str(tmp_path / "s"))))
    try:
        default = r.ingest([str(DOC)], "a")
        small = r.ingest([str(DOC)], "b", chunking=ChunkingConfig(chunk_tokens=100,
                                                                   overlap_tokens=20))  # fmt: skip
        again = r.ingest([str(DOC)], "c")
    finally:
        r.close()
    assert small.chunks_embedded > default.chunks_embedded
    assert again.chunks_embedded == default.chunks_embedded  # the config is untouched
