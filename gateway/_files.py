"""Uploaded files (OpenAI's ``/v1/files``): each one a folder ``<home>/files/<file-id>/`` with
the bytes under their own file name (the loaders pick a reader by suffix) and ``file.json``,
its file object. Written aside and renamed into place, so a crash never leaves half a file
that the listing shows. Synchronous: the router calls it in a thread."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

_ID = re.compile(r"^file-[0-9a-f]{24}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class FileNotFound(KeyError):
    pass


def safe_filename(name: str) -> str:
    """The upload's own name, reduced to one safe path component (suffix kept)."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    return base[:200] or "upload"


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, file_id: str) -> Path:
        if not _ID.match(file_id):
            raise FileNotFound(file_id)
        return self.root / file_id

    def create(self, filename: str, purpose: str, data: BinaryIO) -> dict[str, Any]:
        file_id = "file-" + secrets.token_hex(12)
        name = safe_filename(filename)
        staging = self.root / f".{file_id}.part"
        staging.mkdir(parents=True)
        try:
            with (staging / name).open("wb") as out:
                shutil.copyfileobj(data, out, 1 << 20)
            obj = {
                "id": file_id,
                "object": "file",
                "bytes": (staging / name).stat().st_size,
                "created_at": int(time.time()),
                "filename": name,
                "purpose": purpose,
                "status": "processed",
                "status_details": None,
            }
            (staging / "file.json").write_text(json.dumps(obj))
            os.replace(staging, self.root / file_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return obj

    def get(self, file_id: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self._dir(file_id) / "file.json").read_text()))
        except (FileNotFoundError, ValueError):
            raise FileNotFound(file_id) from None

    def path(self, file_id: str) -> Path:
        return self._dir(file_id) / self.get(file_id)["filename"]

    def list(self, purpose: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            if _ID.match(d.name):
                try:
                    obj = self.get(d.name)
                except FileNotFound:
                    continue
                if purpose is None or obj["purpose"] == purpose:
                    out.append(obj)
        return sorted(out, key=lambda o: (o["created_at"], o["id"]), reverse=True)

    def delete(self, file_id: str) -> None:
        d = self._dir(file_id)
        if not (d / "file.json").exists():
            raise FileNotFound(file_id)
        trash = self.root / f".{file_id}.deleting"
        os.replace(d, trash)  # gone from the listing at once
        shutil.rmtree(trash, ignore_errors=True)
