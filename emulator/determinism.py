"""Stable hashing: every random choice of the emulator is derived from named parts (seed, stream,
message index, ...), never from global state, so any message or file can be produced on its own,
in any order, in any process, with the same result."""

from __future__ import annotations

import hashlib
import random


def digest64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def draw(*parts: object) -> float:
    """A uniform number in [0, 1) named by the parts."""
    return digest64(*parts) / 2**64


def rng(*parts: object) -> random.Random:
    """A private random generator named by the parts."""
    return random.Random(digest64(*parts))
