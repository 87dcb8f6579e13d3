"""One file streamed into the raw store's media folder and renamed to its content address.

A download never holds a whole file in memory: its chunks go to a temporary file while a sha256
runs over them, and the finished file is renamed to `raw/media/<sha256[:2]>/<sha256>`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from midshard.store import TMP_SUFFIX

if TYPE_CHECKING:
    from midshard.raw_store import RawStore


class MediaWriter:
    """One file on its way into the media store: streamed to a temporary file with a running sha256,
    then renamed to its content address, so no copy of the whole file is ever held in memory.

    The temporary file is `raw/media/<tag>.<random>.tmp` (for an object store, in the local temp
    folder, uploaded at `commit`). `finish` closes it once the bytes are complete; `commit` fsyncs
    it and only then renames it, so a name in the media store always stands for complete bytes,
    and may come later (a finished file holds no descriptor while it waits). All but the
    constructor block: call them off the event loop. Leaving the `with` block without `commit`
    removes the temporary file.
    """

    def __init__(self, raw: RawStore, folder: Path, tag: str) -> None:
        self._raw = raw
        self.path = folder / f"{tag}.{random.getrandbits(32):08x}{TMP_SUFFIX}"  # no syscall, unlike uuid4
        self._file: BinaryIO | None = None
        self._sha256 = hashlib.sha256()
        self._state = "new"  # -> "writing" -> "finished" -> "committed"

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._state != "committed":
            self._remove()

    def write(self, chunks: Iterable[bytes]) -> None:
        if self._file is None:
            self._file = _create(self.path)
            self._state = "writing"
        for chunk in chunks:
            self._sha256.update(chunk)  # releases the GIL, like the write
            self._file.write(chunk)

    def finish(self, chunks: Iterable[bytes] = ()) -> None:
        """Write the last chunks and close the file: the bytes are complete."""
        self.write(chunks)
        assert self._file is not None
        self._file.close()
        self._state = "finished"

    def commit(self) -> str:
        """Put the finished bytes in place (once per content) and return their sha256."""
        if self._state != "finished":
            self.finish()
        sha256 = self._sha256.hexdigest()
        self._state = "committed"
        if self._raw.has_media(sha256):  # the same bytes are stored already
            self.path.unlink()
            return sha256
        with self.path.open("rb") as done:  # any descriptor of the file flushes all of it
            os.fsync(done.fileno())
        store, target = self._raw.store, self._raw.store.path(self._raw.media_path(sha256))
        if store.local:
            try:
                self.path.replace(target)
            except FileNotFoundError:  # the first file of its folder
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self.path.replace(target)
        else:  # an object is published when its upload completes
            store.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            store.fs.put_file(str(self.path), target)
            self.path.unlink()
        return sha256

    def _remove(self) -> None:
        if self._file is not None:
            self._file.close()
            self.path.unlink(missing_ok=True)


def _create(path: Path) -> BinaryIO:
    """A new file (never an existing one), its folder made on first use."""
    try:
        return path.open("xb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("xb")
