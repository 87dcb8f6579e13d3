"""The data root (local directory or any fsspec URL) with atomic writes.

Every write is atomic: on a local disk the bytes go to a temporary file in the same directory,
are fsynced and renamed over the target; object stores (s3://, gs://, memory://) publish an object
only when its upload completes. So a reader never sees a partial file, whatever kills the writer.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

TMP_SUFFIX = ".tmp"


class Store:
    """Paths are relative to the root and use '/' (e.g. `raw/media/ab/<sha>`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def location(self, rel: str) -> str:
        """Where a file of the root is, as a user would open it (a path, or a URL off the disk)."""
        path = self.path(rel)
        return path if self.local else self.fs.unstrip_protocol(path)

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def open_read(self, rel: str) -> IO[bytes]:
        return self.fs.open(self.path(rel), "rb")

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as handle:
            handle.write(data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """Write a whole file atomically; nothing is visible at `rel` if the block raises."""
        target = self.path(rel)
        parent = posixpath.dirname(target)
        if not self.local:
            self.fs.makedirs(parent, exist_ok=True)
            with self.fs.open(target, "wb") as handle:
                yield handle
            return
        Path(parent).mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{target}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        try:
            with tmp.open("wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Sorted relative paths of the files directly under `rel_dir` (temp files excluded)."""
        base = self.path(rel_dir)
        if not self.fs.exists(base):
            return []
        names = []
        for entry in self.fs.ls(base, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name.endswith(TMP_SUFFIX) or not name.endswith(suffix):
                continue
            names.append(posixpath.join(rel_dir, name) if rel_dir else name)
        return sorted(names)

    def list_dirs(self, rel_dir: str) -> list[str]:
        base = self.path(rel_dir)
        if not self.fs.exists(base):
            return []
        entries = self.fs.ls(base, detail=True)
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory")

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel))
