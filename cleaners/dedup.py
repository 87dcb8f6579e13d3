"""`near_duplicate`: perceptual near-duplicates, earliest key wins, against everything kept so far.

A candidate duplicates a kept image when their 64-bit `imagehash.phash` values differ in at most
`phash_radius` bits, or in at most `phash_confirm_radius` bits and their dHash values in at most
`dhash_confirm` bits (6 catches every re-encode, rescale and small crop with ~270 chance pairs at
4.7 M images; 8 gives ~14 k chance pairs, so it needs the second hash: see docs/cleaning-media.md).

Candidates are decided in key order (keys sort by time) and only ever match *survivors*: images
kept by earlier runs (passed in) and earlier candidates that were kept. A candidate is dropped as
`duplicate_of:<the earliest surviving key it matches>`. Pairs are found exactly (multi-index
hashing, `cleaners/mih.py`), so the result is the same as comparing against every survivor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from midshard.cleaners.steps import Candidate, Needs, Step
from midshard.records import KEEP, Decision, Reason, drop
from midshard.settings import Settings

if TYPE_CHECKING:
    from midshard.cleaners.mih import MIHIndex

KEY_DTYPE = "S23"  # candidate keys are 23 ASCII digits: fixed-width bytes, no Python object per key

# New survivors are searched by brute force until there are this many, then merged into the index:
# a run called once per batch costs O(batch × this) per call plus an index rebuild every so often.
MERGE_AT = 65_536
# A call with this many new × pending comparisons merges first instead of brute-forcing them.
BRUTE_FORCE_LIMIT = 50_000_000


@dataclass(frozen=True, slots=True)
class KeptHashes:
    """Keys and hashes of every candidate screened and not a duplicate (dedup compares with them)."""

    keys: np.ndarray  # KEY_DTYPE
    phash: np.ndarray  # uint64
    dhash: np.ndarray  # uint64

    @classmethod
    def empty(cls) -> KeptHashes:
        return cls(np.zeros(0, KEY_DTYPE), np.zeros(0, np.uint64), np.zeros(0, np.uint64))


class KeptIndex(Protocol):
    """What the dedup step asks: for each candidate, the kept key it duplicates (or None)."""

    def run(self, keys: list[str], phash: np.ndarray, dhash: np.ndarray) -> list[str | None]: ...


class NearDuplicate(Step):
    """A near-duplicate of an image screened and kept earlier is dropped."""

    name, reasons, needs = "near_duplicate", (Reason.DUPLICATE,), Needs.FEATURES | Needs.KEPT_INDEX

    def __init__(self, settings: Settings, index: KeptIndex | None) -> None:
        super().__init__(settings)
        self.index = index  # None where nothing reaches this step (no features: explain, downloads)

    def __call__(self, candidate: Candidate) -> Decision:
        return self.run([candidate])[0]

    def run(self, candidates: Sequence[Candidate]) -> list[Decision]:
        features = [c.features for c in candidates]
        assert self.index is not None and all(f is not None for f in features)
        duplicates = self.index.run(
            [c.key for c in candidates],
            np.array([f.phash for f in features], dtype=np.uint64),
            np.array([f.dhash for f in features], dtype=np.uint64),
        )
        return [KEEP if of is None else drop(Reason.DUPLICATE, of) for of in duplicates]


class NearDuplicateFilter:
    """The kept set (keys + pHash + dHash) and the greedy earliest-wins filter over new candidates."""

    def __init__(self, settings: Settings, kept: KeptHashes | None = None) -> None:
        from midshard.cleaners.mih import as_hashes  # numba: loaded only where dedup runs

        kept = kept or KeptHashes.empty()
        if not len(kept.keys) == len(kept.phash) == len(kept.dhash):
            raise ValueError("kept keys, pHashes and dHashes differ in length")
        self.phash_radius = settings.phash_radius
        self.confirm_radius = settings.phash_confirm_radius
        self.dhash_confirm = settings.dhash_confirm
        self.radius = max(self.phash_radius, self.confirm_radius)
        self.threads = settings.clean_workers or None
        self._keys = np.asarray(kept.keys, dtype=KEY_DTYPE)
        self._phash = as_hashes(kept.phash)
        self._dhash = as_hashes(kept.dhash)
        self._index: MIHIndex | None = None  # over the first `len(self._index)` kept entries

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kept_keys(self) -> list[str]:
        return [key.decode() for key in self._keys.tolist()]

    def run(self, keys: list[str], phash: np.ndarray, dhash: np.ndarray) -> list[str | None]:
        """For each candidate (aligned with `keys`): the kept key it duplicates, or None (then kept)."""
        if not len(keys) == len(phash) == len(dhash):
            raise ValueError("keys, phash and dhash differ in length")
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate candidate keys")
        from midshard.cleaners.mih import as_hashes

        phash, dhash = as_hashes(phash), as_hashes(dhash)
        order = np.argsort(np.asarray(keys, dtype=str), kind="stable")  # fixed-width: a C sort
        sorted_keys = [keys[i] for i in order]
        phash, dhash = phash[order], dhash[order]

        old_best = self._earliest_kept_matches(phash, dhash)
        earlier = self._earlier_candidate_matches(phash, dhash)
        result: list[str | None] = [None] * len(keys)
        alive = np.ones(len(keys), dtype=bool)
        for j in sorted(set(old_best) | set(earlier)):
            matches = [sorted_keys[i] for i in earlier.get(j, ()) if alive[i]]
            if j in old_best:
                matches.append(old_best[j])
            if matches:
                result[j] = min(matches)
                alive[j] = False

        self._keys = np.concatenate([self._keys, np.asarray(sorted_keys, dtype=KEY_DTYPE)[alive]])
        self._phash = np.concatenate([self._phash, phash[alive]])
        self._dhash = np.concatenate([self._dhash, dhash[alive]])
        aligned: list[str | None] = [None] * len(keys)
        for position, original in enumerate(order):
            aligned[original] = result[position]
        return aligned

    def _is_match(self, p_distance: np.ndarray, d_distance: np.ndarray) -> np.ndarray:
        confirmed = (p_distance <= self.confirm_radius) & (d_distance <= self.dhash_confirm)
        return (p_distance <= self.phash_radius) | confirmed

    def _earliest_kept_matches(self, phash: np.ndarray, dhash: np.ndarray) -> dict[int, str]:
        """Candidate position -> earliest kept key it matches (kept = before this call)."""
        from midshard.cleaners.mih import MIHIndex

        pending = len(self._keys) - (len(self._index) if self._index is not None else 0)
        if self._index is None or pending >= MERGE_AT or pending * len(phash) > BRUTE_FORCE_LIMIT:
            self._index = MIHIndex(self._phash, self.radius, self.threads) if len(self._phash) else None
            pending = 0
        pairs = [self._index.query(phash)] if self._index is not None else []
        if pending:
            start = len(self._index) if self._index is not None else 0
            tail = _brute_force_pairs(phash, self._phash[start:], self.radius)
            pairs.append(tail + np.array([0, start]))
        if not pairs:
            return {}
        found = np.concatenate(pairs)
        new, old = found[:, 0], found[:, 1]
        p_distance = np.bitwise_count(phash[new] ^ self._phash[old])
        d_distance = np.bitwise_count(dhash[new] ^ self._dhash[old])
        best: dict[int, str] = {}
        for i, j in found[self._is_match(p_distance, d_distance)].tolist():
            key = self._keys[j].decode()
            if i not in best or key < best[i]:
                best[i] = key
        return best

    def _earlier_candidate_matches(self, phash: np.ndarray, dhash: np.ndarray) -> dict[int, list[int]]:
        """Candidate position -> the earlier candidate positions it matches (within this call)."""
        from midshard.cleaners.mih import all_pairs

        pairs = all_pairs(phash, self.radius, self.threads)
        first, second = pairs[:, 0], pairs[:, 1]
        p_distance = np.bitwise_count(phash[first] ^ phash[second])
        d_distance = np.bitwise_count(dhash[first] ^ dhash[second])
        earlier: dict[int, list[int]] = {}
        for i, j in pairs[self._is_match(p_distance, d_distance)].tolist():
            earlier.setdefault(j, []).append(i)  # i < j: positions are in key order
        return earlier


def _brute_force_pairs(new: np.ndarray, old: np.ndarray, radius: int) -> np.ndarray:
    """(i into new, j into old) within radius, by blocks of rows (for the few recent survivors)."""
    out = []
    block = max(1, 4_000_000 // max(len(old), 1))
    for start in range(0, len(new), block):
        distances = np.bitwise_count(new[start : start + block, None] ^ old[None, :])
        rows, cols = np.nonzero(distances <= radius)
        out.append(np.stack([rows + start, cols], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), np.int64)
