"""OpenAI base URLs: users write a server root or its ``/v1``, with or without a trailing slash.

Two spellings of one rule: the SDKs want the ``/v1`` base, the gateway keeps replica roots
(it appends the route itself). ``http://h/``, ``http://h/v1`` and ``http://h/v1/`` all mean the
same server.
"""

from __future__ import annotations


def server_root(url: str) -> str:
    """``url`` without trailing slashes and without one trailing ``/v1``."""
    root = url.rstrip("/")
    if root.endswith("/v1"):
        root = root[:-3].rstrip("/")
    return root


def openai_base_url(url: str) -> str:
    """The ``.../v1`` base the OpenAI SDKs take, for a server root or a ``/v1`` URL."""
    return server_root(url) + "/v1"
