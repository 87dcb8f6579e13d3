"""Multi-index hashing is exact (numpy brute force is the oracle), and the earliest-wins filter."""

from __future__ import annotations

import numpy as np
import pytest

from midshard.cleaners import dedup
from midshard.cleaners.dedup import KeptHashes, NearDuplicateFilter
from midshard.cleaners.mih import MIHIndex, Plan, all_pairs, query
from midshard.settings import Settings


def flip_bits(rng: np.random.Generator, value: np.uint64, count: int) -> np.uint64:
    mask = sum(1 << int(bit) for bit in rng.choice(64, size=count, replace=False))
    return value ^ np.uint64(mask)


def planted_hashes(seed: int, n: int, cluster: int) -> np.ndarray:
    """Random hashes, 5 % overwritten by near-duplicates at distance 0..10, and a low-entropy
    cluster (shared top 48 bits: one hot bucket in three of the four 16-bit tables)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
    for target in rng.choice(n, size=n // 20, replace=False):
        hashes[target] = flip_bits(rng, hashes[rng.integers(n)], int(rng.integers(0, 11)))
    stem = np.uint64(0xDEADBEEFCAFE) << np.uint64(16)
    hashes[:cluster] = stem | rng.integers(0, 2**16, size=cluster, dtype=np.uint64)
    return hashes


def brute_pairs(new: np.ndarray, old: np.ndarray | None, radius: int) -> set[tuple[int, int]]:
    """The oracle: every pair within radius by exhaustive comparison (i < j for a self-join)."""
    found = set()
    other = new if old is None else old
    for start in range(0, len(new), 512):
        distances = np.bitwise_count(new[start : start + 512, None] ^ other[None, :])
        rows, cols = np.nonzero(distances <= radius)
        found.update((int(r) + start, int(c)) for r, c in zip(rows, cols, strict=True))
    return {(i, j) for i, j in found if i < j} if old is None else found


@pytest.fixture(scope="module")
def hashes() -> np.ndarray:
    return planted_hashes(seed=1, n=6000, cluster=400)


@pytest.mark.slow
@pytest.mark.parametrize("radius", [0, 1, 4, 6, 8, 10])
def test_all_pairs_equals_brute_force(hashes, radius):
    pairs = all_pairs(hashes, radius, threads=2)
    assert len(pairs) == len({tuple(p) for p in pairs.tolist()})  # each pair reported once
    assert {tuple(p) for p in pairs.tolist()} == brute_pairs(hashes, None, radius)
    assert (pairs[:, 0] < pairs[:, 1]).all()


@pytest.mark.parametrize("radius", [2, 8])
def test_incremental_query_equals_brute_force(hashes, radius):
    old, new = hashes[:4500], hashes[4500:].copy()
    rng = np.random.default_rng(2)
    for i in range(0, len(new), 7):  # near-duplicates of old ones, some inside the cluster
        new[i] = flip_bits(rng, old[rng.integers(len(old))], int(rng.integers(0, 11)))
    pairs = query(new, old, radius, threads=2)
    assert {tuple(p) for p in pairs.tolist()} == brute_pairs(new, old, radius)


def test_query_also_works_with_one_thread_and_the_large_table_plan():
    plan = Plan.for_size(5_000_000, 8)
    assert plan.widths == (20, 20, 20) and plan.radii == (2, 2, 2)  # m = 3 at JourneyDB scale
    assert Plan.for_size(1_000, 8).radii == (2, 1, 1, 1)
    assert Plan.for_size(1_000, 1).widths == (16, 16)  # two substrings suffice for r = 1
    hashes = planted_hashes(seed=3, n=2000, cluster=50)
    index = MIHIndex(hashes, 8, threads=1)
    assert {tuple(p) for p in index.self_join().tolist()} == brute_pairs(hashes, None, 8)


@pytest.mark.parametrize("radius", [4, 8])
def test_three_substrings_that_leave_bits_unindexed_are_still_exact(hashes, radius):
    """The plan used from 2 M hashes on (3 x 20 bits at 5 M), scaled down: 3 x 12 of 64 bits."""
    plan = Plan(radius, (12, 12, 12), {4: (1, 1, 0), 8: (2, 2, 2)}[radius])  # sum = radius + 1 - 3
    pairs = MIHIndex(hashes, radius, threads=2, plan=plan).self_join()
    assert {tuple(p) for p in pairs.tolist()} == brute_pairs(hashes, None, radius)
    with pytest.raises(ValueError, match="does not search radius"):
        MIHIndex(hashes, radius + 2, plan=plan)


def test_largest_bucket_per_table_reveals_the_cluster(hashes):
    largest = MIHIndex(hashes, 8, threads=2).largest_buckets()
    assert len(largest) == 4 and min(largest[:3]) >= 400 and largest[3] < 400


# -- the earliest-wins filter -------------------------------------------------------------------


def reference_filter(settings, kept, candidates):
    """Straightforward greedy: candidates in key order, each against every survivor so far."""
    keys, phash, dhash = (list(x) for x in kept)
    out = {}
    for key, p, d in sorted(candidates):
        p_distance = np.bitwise_count(np.array(phash, np.uint64) ^ np.uint64(p)) if phash else np.array([])
        d_distance = np.bitwise_count(np.array(dhash, np.uint64) ^ np.uint64(d)) if dhash else np.array([])
        match = (p_distance <= settings.phash_radius) | (
            (p_distance <= settings.phash_confirm_radius) & (d_distance <= settings.dhash_confirm)
        )
        matched = [keys[i] for i in np.nonzero(match)[0]]
        out[key] = min(matched) if matched else None
        if not matched:
            keys.append(key)
            phash.append(p)
            dhash.append(d)
    return out


DHASH_OF = np.uint64(0x5A5A_5A5A_5A5A_5A5A)  # a pool hash's "dHash" (any fixed bijection will do)


def candidate_set(seed: int, n: int, pool: np.ndarray, prefix: str):
    """Candidates near `pool` hashes, with pHash distance 0..10 and dHash distance 0..20."""
    rng = np.random.default_rng(seed)
    phash, dhash = rng.integers(0, 2**64, size=(2, n), dtype=np.uint64, endpoint=False)
    for i in range(0, n, 2):
        source = rng.integers(len(pool))
        phash[i] = flip_bits(rng, pool[source], int(rng.integers(0, 11)))
        dhash[i] = flip_bits(rng, pool[source] ^ DHASH_OF, int(rng.integers(0, 21)))
    keys = [f"{prefix}{int(k):06d}" for k in rng.permutation(n)]
    return keys, phash, dhash


@pytest.mark.parametrize("merge_at", [65_536, 10])  # the brute-forced recent survivors, and merging
def test_filter_matches_greedy_reference_across_calls(monkeypatch, merge_at):
    monkeypatch.setattr(dedup, "MERGE_AT", merge_at)
    settings = Settings(clean_workers=2)
    pool = planted_hashes(seed=4, n=300, cluster=30)
    kept_keys = [f"a{i:06d}" for i in range(100)]  # an earlier run's survivors
    kept = (kept_keys, pool[:100], pool[:100] ^ DHASH_OF)
    batch1 = candidate_set(5, 400, pool, "b")
    batch2 = candidate_set(6, 300, pool, "b")  # keys interleave with batch 1's
    batch2 = ([k.replace("b", "c") for k in batch2[0]], batch2[1], batch2[2])

    expected = reference_filter(settings, kept, list(zip(*batch1, strict=True)))
    survivors = [(k, p, d) for k, p, d in zip(*batch1, strict=True) if expected[k] is None]
    kept_after = tuple(list(x) + [s[i] for s in sorted(survivors)] for i, x in enumerate(kept))
    expected.update(reference_filter(settings, kept_after, list(zip(*batch2, strict=True))))

    dedup_filter = NearDuplicateFilter(settings, KeptHashes(*kept))
    got = dict(zip(batch1[0], dedup_filter.run(*batch1), strict=True))
    got.update(zip(batch2[0], dedup_filter.run(*batch2), strict=True))
    assert got == expected
    assert sum(v is not None for v in got.values()) > 50  # the data really has duplicates
    confirmed = [k for k, v in got.items() if v is not None]
    assert len(dedup_filter) == 100 + len(got) - len(confirmed)


def bits(*ranges: tuple[int, int]) -> int:
    return sum(1 << b for low, high in ranges for b in range(low, high))


def test_confirm_rule_and_earliest_key_wins():
    settings = Settings(phash_radius=6, phash_confirm_radius=8, dhash_confirm=12)
    dedup_filter = NearDuplicateFilter(
        settings, KeptHashes(["k2"], np.zeros(1, np.uint64), np.zeros(1, np.uint64))
    )
    candidates = {  # key: (pHash, dHash); the kept k2 is (0, 0)
        "k3": (bits((0, 8)), bits((0, 20))),  # pHash 8 from k2, dHash 20: not confirmed -> kept
        "k1": (bits((0, 6)), 0),  # pHash 6: a duplicate of k2 even though its key is earlier
        "k4": (bits((56, 64)), bits((40, 52))),  # pHash 8, dHash 12: confirmed -> k2
        "k5": (bits((20, 30)), 0),  # pHash 10: kept
        "k6": (bits((20, 30)) ^ 1, 0),  # 1 bit from k5, a survivor of this same call -> k5
        "k7": (bits((0, 8)) ^ 0b11, bits((0, 20))),  # 2 from k3 (kept), 6 from k2 -> earliest: k2
    }
    keys = list(candidates)
    phash = np.array([candidates[k][0] for k in keys], np.uint64)
    dhash = np.array([candidates[k][1] for k in keys], np.uint64)
    assert dedup_filter.run(keys, phash, dhash) == [None, "k2", "k2", None, "k5", "k2"]
    assert dedup_filter.kept_keys == ["k2", "k3", "k5"]
    with pytest.raises(ValueError, match="duplicate candidate keys"):
        dedup_filter.run(["x", "x"], phash[:2], dhash[:2])
