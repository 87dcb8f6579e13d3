"""Fewer glibc malloc arenas for the processes that run the flows.

glibc gives a thread that allocates under contention an arena of its own (up to 8 per core) and
keeps what is freed there for reuse. A flow runs many threads — Prefect's task runner and
services, download slots, disk threads — and the memory each arena keeps grew the run process with
the bytes downloaded (~10 MiB per 1 000 small images in `bench/scale.py`, ~35 MiB per 1 000
real-size ones in `bench/e2e.py`). Two arenas took the scrape at 30 000 images from 1 591 to
1 495 MiB (docs/scale.md). Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's <malloc.h>
ARENAS = 2


def limit_arenas() -> bool:
    """Cap this process's malloc arenas at `ARENAS` (arenas made before stay); False if not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError, TypeError):  # no such call (macOS), or no CDLL(None) (Windows)
        return False
    return mallopt(M_ARENA_MAX, ARENAS) == 1
