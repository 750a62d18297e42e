"""The Qdrant server backend reads the server's version at connect and refuses an old one.

A stub HTTP server on 127.0.0.1 answers ``GET /`` like Qdrant does (``{"title", "version",
"commit"}``); every other path is a 404, so only the version check is under test here.
"""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from retrieval import RetrievalError, StoreConfig, open_store
from retrieval._qdrant_store import MIN_SERVER_VERSION, QdrantServerStore, parse_server_version


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: dict[str, Any] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Stub

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path == "/" and self.server.root is not None:
            self._send(200, self.server.root)
        else:
            self._send(404, {"status": {"error": f"Not found: {self.path}"}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


def _root(version: str) -> dict[str, Any]:
    """What Qdrant answers at ``GET /``."""
    return {"title": "qdrant - vector search engine", "version": version, "commit": "0" * 40}


@contextmanager
def qdrant_stub(version: str | None, root: dict[str, Any] | None = None) -> Iterator[_Stub]:
    """A stub Qdrant; ``version=None`` answers ``root`` as it is (None: a 404 at ``/``)."""
    stub = _Stub(_root(version) if version is not None else root)
    thread = threading.Thread(target=stub.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(5)


def _config(url: str) -> StoreConfig:
    return StoreConfig(backend="qdrant", url=url, timeout_s=5)


@pytest.mark.parametrize("version", ["1.15.4", "1.16.3"])
def test_an_older_server_is_refused_naming_both_versions(version: str) -> None:
    with qdrant_stub(version) as stub:
        with pytest.raises(RetrievalError) as info:
            QdrantServerStore(_config(stub.url))
        assert stub.paths == ["/"]
    message = str(info.value)
    assert ">= 1.17.0" in message and f"version {version}" in message, message
    assert stub.url in message


def test_open_store_refuses_a_1_15_server() -> None:
    """Through the public entry point the gateway and the CLI use."""
    with qdrant_stub("1.15.4") as stub, pytest.raises(RetrievalError, match=r"1\.15\.4"):
        open_store(_config(stub.url), home=None)


@pytest.mark.parametrize("version", ["1.20.0", "1.21.3"])
def test_a_new_enough_server_passes_the_check(version: str) -> None:
    with qdrant_stub(version) as stub:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # within the client's minor window: no warning
            store = QdrantServerStore(_config(stub.url))
        try:
            assert stub.paths == ["/"]
        finally:
            store.close()


def test_the_minimum_passes_with_a_warning_outside_the_clients_window() -> None:
    version = ".".join(map(str, MIN_SERVER_VERSION))
    with qdrant_stub(version) as stub:
        with pytest.warns(UserWarning, match="minor version"):
            store = QdrantServerStore(_config(stub.url))
        store.close()


@pytest.mark.parametrize(
    ("root", "error"),
    [
        (_root("unknown"), "reports no usable version"),
        (_root(""), "reports no usable version"),
        ({"title": "not qdrant"}, "cannot read the Qdrant server version"),
        (None, "cannot read the Qdrant server version"),  # 404 at /
    ],
    ids=["unknown", "empty", "missing", "404"],
)
def test_a_server_without_a_version_is_refused(root: dict[str, Any] | None, error: str) -> None:
    with qdrant_stub(None, root) as stub, pytest.raises(RetrievalError, match=error):
        QdrantServerStore(_config(stub.url))


def test_an_unreachable_server_is_a_retrieval_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(RetrievalError, match="cannot read the Qdrant server version"):
        QdrantServerStore(_config(url))


def test_local_mode_does_not_ask_for_a_version() -> None:
    store = QdrantServerStore(StoreConfig(backend="qdrant", path=":memory:"))
    try:
        assert store.list_collections() == []
    finally:
        store.close()


def test_parse_server_version() -> None:
    assert parse_server_version("1.15.4") == (1, 15, 4)
    assert parse_server_version("v1.20.0") == (1, 20, 0)
    assert parse_server_version("1.18.0-dev") == (1, 18, 0)
    assert parse_server_version(None) is None and parse_server_version("1.17") is None
