"""Exact near-neighbour search over 64-bit hashes: multi-index hashing (Norouzi, Punjani, Fleet 2012).

Cut m disjoint substrings out of the 64 bits and index each in a bucket table (CSR: `starts`, the
hashes in bucket order and their original positions). If two hashes differ in at most r bits, then
in some substring i they differ in at most t_i bits whenever sum(t_i) = r + 1 - m (generalised
pigeonhole: otherwise the substring distances alone add up to more than r — this holds for any
disjoint substrings, they need not cover all 64 bits). So probing, per table, the buckets within
t_i flips of a bucket finds every pair within r — no misses — and each candidate is verified on all
64 bits. A pair is reported only by the first table in which it qualifies, so there is no
deduplication pass.

Substrings: 4 × 16 bits below 2 M hashes (measured: the fastest split there); above, 3 substrings of
log2(N) − 2 bits (20 at 5 M, at most 21). Shorter than the paper's log2(N) because probing a bucket
costs a cache miss while comparing a candidate costs a fraction of a nanosecond in the buffered
kernel below: at 5 M, 3 × 20 bits join in 12.7 s on one core, 22/21/21 in 20.4 s.

The kernels are numba-compiled (`cache=True`: compiled once per machine) and release the GIL, so
the bucket range (self-join) or the key-sorted query batch (incremental query) is split over threads.
Outputs are sorted index pairs, so results are deterministic whatever the thread count.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

CHUNKS_PER_THREAD = 8  # more chunks than threads: a hot bucket does not leave a thread idle


@intrinsic
def _popcount(typingctx, value):
    """LLVM's ctpop: one POPCNT instruction on x86-64."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@njit(nogil=True, cache=True)
def _push(out, n, a, b):
    if n == out.shape[0]:
        grown = np.empty((2 * out.shape[0], 2), np.int64)
        grown[:n] = out[:n]
        out = grown
    out[n, 0] = a
    out[n, 1] = b
    return out


@njit(nogil=True, cache=True)
def _qualifies(diff, radius, table, shifts, submasks, radii):
    """Within radius, and no earlier table would have reported it (the canonical table rule)."""
    if _popcount(diff) > radius:
        return False
    for j in range(table):  # noqa: SIM110 (numba compiles loops, not all() over generators)
        if _popcount((diff >> shifts[j]) & submasks[j]) <= radii[j]:
            return False
    return True


@njit(nogil=True, cache=True)
def _grow(near_hashes, near_slots, size):
    capacity = max(size, 2 * near_hashes.shape[0])
    hashes, slots = np.empty(capacity, np.uint64), np.empty(capacity, np.int64)
    hashes[: near_hashes.shape[0]] = near_hashes
    slots[: near_slots.shape[0]] = near_slots
    return hashes, slots


@njit(nogil=True, cache=True)
def _join_range(starts, hashes, positions, flips, groups, lo, hi, table, shifts, submasks, radii, radius):
    """Pairs (i < j) found by table `table` for buckets u in [lo, hi).

    Per bucket u, the hashes of every probed bucket v = u ^ flip > u (and their slots in bucket
    order) are first copied into one buffer, then each hash of u is compared with the whole buffer
    in a branch-free loop: the cost is memory and branch misprediction on tiny buckets, not
    popcounts. Flips are grouped by their highest bit (`groups`): v > u exactly when that bit is
    clear in u. Original positions are only looked up for the rare hits.
    """
    out = np.empty((256, 2), np.int64)
    n = 0
    near_hashes, near_slots = np.empty(1024, np.uint64), np.empty(1024, np.int64)
    for u in range(lo, hi):
        a0, a1 = starts[u], starts[u + 1]
        if a0 == a1:
            continue
        m = 0
        for bit in range(groups.shape[0] - 1):
            if (u >> bit) & 1:
                continue
            for f in range(groups[bit], groups[bit + 1]):
                v = u ^ flips[f]
                s, e = starts[v], starts[v + 1]
                if m + e - s > near_hashes.shape[0]:
                    near_hashes, near_slots = _grow(near_hashes, near_slots, m + e - s)
                for y in range(s, e):
                    near_hashes[m] = hashes[y]
                    near_slots[m] = y
                    m += 1
        for x in range(a0, a1):
            hx, i = hashes[x], positions[x]
            for y in range(x + 1, a1):  # pairs inside bucket u
                if _qualifies(hx ^ hashes[y], radius, table, shifts, submasks, radii):
                    out = _push(out, n, min(i, positions[y]), max(i, positions[y]))
                    n += 1
            hits = 0
            for y in range(m):
                hits += _popcount(hx ^ near_hashes[y]) <= radius
            if hits == 0:
                continue
            for y in range(m):
                if _qualifies(hx ^ near_hashes[y], radius, table, shifts, submasks, radii):
                    j = positions[near_slots[y]]
                    out = _push(out, n, min(i, j), max(i, j))
                    n += 1
    return out[:n]


@njit(nogil=True, cache=True)
def _query_range(
    keys, queries, query_positions, lo, hi, flips, starts, hashes, positions, table, shifts, submasks, radii,
    radius,
):  # fmt: skip
    """(query, indexed) pairs for key-sorted queries [lo, hi): one sweep per flip mask (cache-friendly)."""
    out = np.empty((256, 2), np.int64)
    n = 0
    for flip in flips:
        for p in range(lo, hi):
            v = keys[p] ^ flip
            for y in range(starts[v], starts[v + 1]):
                if _qualifies(queries[p] ^ hashes[y], radius, table, shifts, submasks, radii):
                    out = _push(out, n, query_positions[p], positions[y])
                    n += 1
    return out[:n]


@njit(nogil=True, cache=True)
def _bucket_sort(keys, n_buckets):
    """Counting sort by key: CSR starts and the stable permutation (positions in bucket order)."""
    starts = np.zeros(n_buckets + 1, np.int64)
    for key in keys:
        starts[key + 1] += 1
    for b in range(n_buckets):
        starts[b + 1] += starts[b]
    fill = starts[:-1].copy()
    order = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        order[fill[keys[i]]] = i
        fill[keys[i]] += 1
    return starts, order


@dataclass(frozen=True)
class Plan:
    """Which substrings are indexed and the radius t_i probed in each."""

    radius: int
    widths: tuple[int, ...]  # bits per substring, most significant first
    radii: tuple[int, ...]  # t_i; sum = radius + 1 - len(radii)

    @classmethod
    def for_size(cls, n: int, radius: int) -> Plan:
        if not 0 <= radius <= 64:
            raise ValueError(f"radius {radius} is not 0..64")
        widths = (16,) * 4 if n < 2_000_000 else (min(21, int(np.log2(n)) - 2),) * 3
        m = len(widths)
        used = min(m, radius + 1)  # fewer tables suffice for tiny radii (pigeonhole over a subset)
        spare = radius + 1 - used
        radii = tuple(spare // used + (1 if i < spare % used else 0) for i in range(used))
        return cls(radius, widths[:used], radii)

    @property
    def shifts(self) -> np.ndarray:
        ends = np.cumsum(self.widths)
        return (64 - ends).astype(np.uint64)

    @property
    def submasks(self) -> np.ndarray:
        return np.array([(1 << w) - 1 for w in self.widths], dtype=np.uint64)

    def flips(self, table: int) -> np.ndarray:
        """Every `widths[table]`-bit mask with at most `radii[table]` bits set (0 first)."""
        width, t = self.widths[table], self.radii[table]
        subsets = itertools.chain.from_iterable(itertools.combinations(range(width), k) for k in range(t + 1))
        return np.array([sum(1 << bit for bit in bits) for bits in subsets], dtype=np.int64)

    def flip_groups(self, table: int) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero flips sorted by highest set bit, and where each bit's group starts."""
        flips = self.flips(table)[1:]
        top = np.array([int(f).bit_length() - 1 for f in flips], dtype=np.int64)
        order = np.argsort(top, kind="stable")
        groups = np.searchsorted(top[order], np.arange(self.widths[table] + 1))
        return flips[order], groups.astype(np.int64)


class MIHIndex:
    """Bucket tables over `hashes` for searches within `radius` (rebuilt per run: ~2 s at 5 M)."""

    def __init__(
        self, hashes: np.ndarray, radius: int, threads: int | None = None, plan: Plan | None = None
    ) -> None:
        self.hashes = as_hashes(hashes)
        self.plan = plan or Plan.for_size(len(self.hashes), radius)
        if self.plan.radius != radius or sum(self.plan.radii) != radius + 1 - len(self.plan.radii):
            raise ValueError(f"{self.plan} does not search radius {radius} exactly")
        self.threads = threads or os.cpu_count() or 1
        self._shifts, self._submasks = self.plan.shifts, self.plan.submasks
        radii = np.array(self.plan.radii, dtype=np.uint64)
        self._rule = (self._shifts, self._submasks, radii, np.uint64(radius))  # the kernels' last arguments
        self.tables = []  # (starts, hashes in bucket order, their positions)
        for table in range(len(self.plan.radii)):
            keys = self._keys(self.hashes, table)
            starts, order = _bucket_sort(keys, 1 << self.plan.widths[table])
            self.tables.append((starts, self.hashes[order], order))

    def __len__(self) -> int:
        return len(self.hashes)

    def largest_buckets(self) -> list[int]:
        """Largest bucket per table: a hot bucket (flat or templated images) costs quadratic time."""
        return [int(np.diff(starts).max(initial=0)) for starts, _, _ in self.tables]

    def self_join(self) -> np.ndarray:
        """All pairs (i, j), i < j, within the radius, sorted."""
        tasks = []
        for table, (starts, hashes, positions) in enumerate(self.tables):
            flips, groups = self.plan.flip_groups(table)
            for lo, hi in _balanced_ranges(starts, self.threads * CHUNKS_PER_THREAD):
                args = (starts, hashes, positions, flips, groups, lo, hi, table, *self._rule)
                tasks.append((_join_range, args))
        return _sorted_pairs(self._run(tasks))

    def query(self, new: np.ndarray) -> np.ndarray:
        """All pairs (new index, indexed index) within the radius, sorted."""
        new = as_hashes(new)
        tasks = []
        for table, (starts, hashes, positions) in enumerate(self.tables):
            keys = self._keys(new, table)
            order = np.argsort(keys, kind="stable")
            sorted_keys, sorted_new = keys[order], new[order]
            flips = self.plan.flips(table)
            bounds = np.linspace(0, len(new), self.threads * CHUNKS_PER_THREAD + 1).astype(np.int64)
            for lo, hi in itertools.pairwise(bounds):
                if lo < hi:
                    args = (sorted_keys, sorted_new, order, lo, hi, flips, starts, hashes, positions, table)
                    tasks.append((_query_range, (*args, *self._rule)))
        return _sorted_pairs(self._run(tasks))

    def _keys(self, hashes: np.ndarray, table: int) -> np.ndarray:
        return ((hashes >> self._shifts[table]) & self._submasks[table]).astype(np.int64)

    def _run(self, tasks: list) -> list[np.ndarray]:
        if self.threads == 1:
            return [kernel(*args) for kernel, args in tasks]
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(lambda task: task[0](*task[1]), tasks))


def as_hashes(values: np.ndarray) -> np.ndarray:
    """64-bit hashes as contiguous uint64: int64 is reinterpreted bit for bit, Python ints converted."""
    if not isinstance(values, np.ndarray):
        return np.array(values, dtype=np.uint64)
    if values.dtype not in (np.int64, np.uint64):
        raise TypeError(f"hashes must be a uint64 or int64 array, not {values.dtype}")
    return np.ascontiguousarray(values).view(np.uint64)


def all_pairs(hashes: np.ndarray, radius: int, threads: int | None = None) -> np.ndarray:
    """Index pairs (i, j), i < j, with Hamming distance <= radius; exact, sorted."""
    return MIHIndex(hashes, radius, threads).self_join()


def query(new: np.ndarray, old: np.ndarray, radius: int, threads: int | None = None) -> np.ndarray:
    """Index pairs (i into new, j into old) with Hamming distance <= radius; exact, sorted."""
    return MIHIndex(old, radius, threads).query(new)


def _balanced_ranges(starts: np.ndarray, chunks: int) -> list[tuple[int, int]]:
    """Split the bucket range into `chunks` ranges holding about the same number of hashes."""
    n_buckets = len(starts) - 1
    targets = np.linspace(0, starts[-1], chunks + 1)[1:-1]
    cuts = np.searchsorted(starts, targets).tolist()
    bounds = sorted({0, *cuts, n_buckets})
    return list(itertools.pairwise(bounds))


def _sorted_pairs(parts: list[np.ndarray]) -> np.ndarray:
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
