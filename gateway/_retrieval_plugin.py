"""Retrieval in the gateway: vector stores (files, ingestion in the background, search), RAG
for prompt templates, local embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from gateway._app import GatewayApp, Plugin
from gateway._config import GatewayConfig


def retrieval_plugin(config: GatewayConfig) -> tuple[Plugin, Any]:
    """The plug-in and the ``retrieve`` callable prompt templates with a retrieval block use.

    The retriever opens its store and loads the embedding model on first use, so a gateway
    that never searches pays nothing at start-up.
    """
    from gateway._admin import check_admin
    from gateway._collection_admin import CollectionVersions, make_collection_admin_router
    from gateway._files import FileStore
    from gateway._vector_search import make_retrieve, make_vector_search_router
    from gateway._vector_store_jobs import VectorStoreJobs
    from gateway._vector_stores import make_files_router, make_vector_stores_router
    from retrieval import Retriever

    assert config.retrieval is not None
    retriever = Retriever(config.retrieval)
    home = config.retrieval.resolved_home()
    files = FileStore(home / "files")
    jobs = VectorStoreJobs(retriever, files, home / "vector_stores")

    def plugin(gw: GatewayApp) -> None:
        async def authenticated(request: Request) -> None:
            gw.state.keys.authenticate(request.headers.get("authorization"))

        auth = [Depends(authenticated)]
        gw.app.include_router(make_vector_search_router(retriever), dependencies=auth)
        gw.app.include_router(
            make_files_router(files, gw.config.server.max_upload_bytes), dependencies=auth
        )
        gw.app.include_router(make_vector_stores_router(jobs), dependencies=auth)

        def admin(request: Request) -> None:
            check_admin(gw.state.keys, request)

        versions = CollectionVersions(retriever, jobs)
        gw.app.include_router(make_collection_admin_router(versions, admin))
        gw.startup.append(jobs.resume)
        gw.shutdown.append(jobs.close)
        gw.shutdown.append(retriever.close)

    return plugin, make_retrieve(retriever)


def local_embeddings_plugin(gw: GatewayApp) -> None:
    """Serve ``kind: embedding`` models that have an ``embedder`` in-process."""
    local = [m for m in gw.config.models if m.embedder is not None]
    if not local:
        return
    from gateway._vector_search import make_local_embeddings_handler
    from retrieval import make_embedder

    for m in local:
        assert m.embedder is not None
        handler = make_local_embeddings_handler({m.upstream_name: make_embedder(m.embedder)})
        gw.proxy.local[m.name] = handler
