"""Which backend a store config names.

Apart from the store protocol so that the backends, which implement the protocol, and the
factory, which imports them, form no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._config import StoreConfig
from ._store import Store


def open_store(config: StoreConfig, home: Any) -> Store:
    """Build the backend a config names. `home` is the data directory (`$LLMOPS_HOME`)."""
    if config.backend == "qdrant":
        from ._qdrant_store import QdrantServerStore

        return QdrantServerStore(config)
    from ._edge_store import EdgeStore

    root = Path(config.path).expanduser() if config.path else Path(home) / "qdrant"
    return EdgeStore(root)
