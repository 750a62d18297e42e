"""Write live weights into the gateway's YAML config, keeping its comments and layout, so
the state a promotion or a rollback reached can be committed by pull request."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def write_weights(path: Path, alias: str, weights: dict[str, float]) -> bool:
    """Set the weights of ``alias``'s variants in the file; False when it lists none such.

    A variant is matched by the model it names (as written in the file, or its canonical
    name in ``weights``). The file is replaced atomically.
    """
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    with path.open(encoding="utf-8") as f:
        doc: Any = yaml.load(f)
    models = doc.get("models") if isinstance(doc, dict) else None
    entry = next((m for m in models or () if isinstance(m, dict) and m.get("name") == alias), None)
    if entry is None or not isinstance(entry.get("variants"), list):
        return False
    changed = False
    for v in entry["variants"]:
        name = v.get("model")
        if name in weights:
            w = weights[name]
            new = int(w) if float(w).is_integer() else w
            if v.get("weight") != new:
                v["weight"] = new
                changed = True
    if not changed:
        return True
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.dump(doc, f)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
