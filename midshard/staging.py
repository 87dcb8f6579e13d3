"""Rebuilds that never destroy what they cannot replace.

A rebuild writes its decisions and dataset into a staging root inside the output root
(`.rebuild/`), marks it complete, then swaps each staged folder in for the live one; the old ones
are deleted only after every swap. A rebuild that fails or is killed before the mark leaves the
previous dataset and decisions untouched (the staging root is discarded by the next run); one
killed during the swap is finished by the next run (`recover`), from the mark. The feature cache
is not staged: it describes image bytes, not a rebuild's choices.
"""

from __future__ import annotations

import posixpath

from midshard.killpoints import kill_point
from midshard.store import Store

STAGING = ".rebuild"
PREVIOUS = ".rebuild-previous"
COMPLETE = "_COMPLETE"
STAGED = ("dataset", "derived/decisions")


def staging_store(root: Store) -> Store:
    """An empty staging root for a new rebuild of `root` (a leftover one is discarded)."""
    recover(root)
    _remove(root, STAGING)
    return Store(_join(root.url, STAGING))


def swap_in(root: Store) -> None:
    """Make the complete staged rebuild the live one."""
    root.write_text(f"{STAGING}/{COMPLETE}", "\n")
    kill_point("rebuild_staged")
    recover(root)


def recover(root: Store) -> None:
    """Finish a swap a kill interrupted, or discard an incomplete staging root."""
    if not root.exists(STAGING):
        _remove(root, PREVIOUS)
        return
    if not root.exists(f"{STAGING}/{COMPLETE}"):
        _remove(root, STAGING)  # a rebuild that never finished: the live data stays
        return
    for name in STAGED:
        staged, live, old = f"{STAGING}/{name}", name, f"{PREVIOUS}/{name}"
        if not root.exists(staged):
            continue  # swapped in already
        if root.exists(live) and not root.exists(old):
            _move(root, live, old)
        _remove(root, live)  # moved away above, or a partial copy of an interrupted move
        _move(root, staged, live)
        kill_point("rebuild_swapped")
    _remove(root, STAGING)
    _remove(root, PREVIOUS)


def _move(store: Store, source: str, target: str) -> None:
    store.fs.makedirs(posixpath.dirname(store.path(target)), exist_ok=True)
    store.fs.mv(store.path(source), store.path(target), recursive=True)


def _remove(store: Store, rel: str) -> None:
    if store.exists(rel):
        store.fs.rm(store.path(rel), recursive=True)


def _join(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name
