"""Errors the retrieval package raises; the CLI and the gateway map them to messages and codes."""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class: anything retrieval refuses or cannot do, with a message meant for the user."""


class CollectionNotFoundError(RetrievalError):
    """The named collection does not exist in the configured store."""


class ModelMismatchError(RetrievalError):
    """The collection was built with a different embedding model than the one asked to query it."""


class StoreBusyError(RetrievalError):
    """The embedded engine's files are held by another process (one process per data folder)."""


class LoaderError(RetrievalError):
    """A file could not be read as a document (binary, undecodable, malformed PDF, too large)."""


class InvalidFilterError(RetrievalError):
    """A search filter has an unknown operator or a value of the wrong type."""
