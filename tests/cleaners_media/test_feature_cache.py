"""The feature cache: integrity at read time, invalidation, and one index per process."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from midshard.cleaners import feature_index
from midshard.cleaners.feature_index import FEATURES_DIR, SCHEMA, FeatureIndex, key_order
from midshard.cleaners.features import FeatureStore
from midshard.settings import Settings
from midshard.store import Store

from .synthetic import natural_png


@pytest.fixture
def settings(root) -> Settings:
    return Settings(root=root, min_pixels=64 * 64, clean_workers=1, nsfw_batch=4, nsfw_scorer="none")


@pytest.fixture
def stored(raw) -> list[str]:
    return [raw.put_media(natural_png(seed, 96, 80)) for seed in range(60, 64)]


def test_a_raw_file_that_no_longer_matches_its_sha256_is_reported_and_not_cached(
    settings, raw, stored, caplog
):
    path = raw.store.path(raw.media_path(stored[1]))
    with Path(path).open("r+b") as handle:  # bit rot: same size, other bytes
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    keys = [(sha, 0) for sha in stored]
    with caplog.at_level(logging.WARNING, logger="midshard.cleaners.features"):
        out = FeatureStore(raw.store, settings).compute(keys, raw)

    assert out[keys[1]].decision == "media_mismatch" and out[keys[1]].phash == 0
    assert math.isnan(out[keys[1]].nsfw_score)
    assert all(out[key].decision == "keep" and out[key].phash for key in keys if key != keys[1])
    (record,) = [r for r in caplog.records if "does not match" in r.getMessage()]
    message = record.getMessage()
    assert path in message and stored[1] in message
    assert (actual := message.split("hash to sha256 ")[1].split(",")[0]) != stored[1] and len(actual) == 64
    # never a lasting answer: not in this process's index, nor on disk
    assert FeatureStore(raw.store, settings).get(keys).keys() == set(keys) - {keys[1]}
    assert FeatureIndex().lookup(raw.store, keys).keys() == set(keys) - {keys[1]}


def test_invalidated_features_count_as_missing_here_and_in_later_runs(settings, raw, stored):
    keys = [(sha, 0) for sha in stored]
    cache = FeatureStore(raw.store, settings)
    first = cache.compute(keys, raw)
    cache.invalidate([stored[0], stored[2], "f" * 64])  # a file never seen is no error

    assert cache.get(keys).keys() == {keys[1], keys[3]}
    assert FeatureIndex().lookup(raw.store, keys).keys() == {keys[1], keys[3]}  # persisted
    again = FeatureStore(raw.store, settings)
    recomputed = again.compute(keys, raw)
    assert again.decoded == 2
    assert all(repr(recomputed[key]) == repr(first[key]) for key in keys)
    assert FeatureIndex().lookup(raw.store, keys).keys() == set(keys)  # the new part wins


def test_invalidating_a_grid_drops_every_cached_tile(root, raw):
    settings = Settings(root=root, min_pixels=32 * 32, clean_workers=1, nsfw_scorer="none")
    grid = raw.put_media(natural_png(70, 128, 128))
    keys = [(grid, tile) for tile in range(5)]
    cache = FeatureStore(raw.store, settings)
    cache.compute(keys, raw)
    cache.invalidate([grid])
    assert cache.get(keys) == {}


def test_one_index_per_process_that_sees_what_other_processes_write(settings, raw, stored):
    """FeatureStores of one process share one index (no reload per task); parts another process
    writes are read on the next lookup, and nothing is read twice."""
    keys = [(sha, 0) for sha in stored]
    assert FeatureIndex.of(raw.store) is FeatureStore(raw.store, settings)._index
    elsewhere = FeatureIndex()  # stands for another process's index over the same directory
    FeatureStore(raw.store, settings).compute(keys[:2], raw)
    assert elsewhere.lookup(raw.store, keys).keys() == set(keys[:2])
    FeatureStore(raw.store, settings).compute(keys, raw)  # computes keys 2-3 only: one new part
    assert len(raw.store.list(FEATURES_DIR, ".parquet")) == 2
    assert elsewhere.lookup(raw.store, keys).keys() == set(keys)
    assert elsewhere.seen == set(raw.store.list(FEATURES_DIR, ".parquet"))


def test_a_deleted_cache_is_empty_for_the_processes_that_had_read_it(settings, raw, stored):
    keys = [(sha, 0) for sha in stored]
    cache = FeatureStore(raw.store, settings)
    cache.compute(keys, raw)
    for part in raw.store.list(FEATURES_DIR, ".parquet"):
        raw.store.remove(part)
    assert cache.get(keys) == {}


def test_many_parts_are_compacted_when_a_process_opens_the_cache(settings, raw, monkeypatch):
    monkeypatch.setattr(feature_index, "COMPACT_AT", 3)
    shas = [raw.put_media(natural_png(seed, 80, 72)) for seed in range(80, 85)]
    for sha in shas:
        FeatureStore(raw.store, settings).compute([(sha, 0)], raw)
    FeatureStore(raw.store, settings).invalidate([shas[0]])
    assert len(raw.store.list(FEATURES_DIR, ".parquet")) == 6

    fresh = FeatureIndex()
    found = fresh.lookup(raw.store, [(sha, 0) for sha in shas])
    assert found.keys() == {(sha, 0) for sha in shas[1:]}
    assert len(raw.store.list(FEATURES_DIR, ".parquet")) == 1  # tombstones are not carried over
    again = FeatureIndex().lookup(Store(raw.store.url), [(sha, 0) for sha in shas])
    assert repr(again) == repr(found)  # repr: NaN scores compare equal


def test_a_large_cache_is_held_as_arrays(tmp_path):
    """200,000 cached rows: the index keeps one sorted numpy key array and Arrow columns, and a
    lookup finds rows by binary search (no Python object per cached row)."""
    store = Store(str(tmp_path / "big"))
    rows = 200_000
    shas = pa.array([f"{i:064x}" for i in range(rows)])
    table = pa.table(
        {
            field.name: pa.array(np.zeros(rows), field.type)
            if field.type != pa.string()
            else pa.nulls(rows, pa.string()).fill_null("")
            for field in SCHEMA
        }
    )
    table = table.set_column(0, "sha256", shas).set_column(
        2, "decision", pa.nulls(rows, pa.string()).fill_null("too_small")
    )
    with store.open_write(f"{FEATURES_DIR}/part-0.parquet") as handle:
        pq.write_table(table, handle)

    index = FeatureIndex()
    wanted = [(f"{i:064x}", 0) for i in (0, 17, rows - 1)] + [("e" * 64, 0), (f"{17:064x}", 1)]
    found = index.lookup(store, wanted)
    assert found.keys() == set(wanted[:3]) and found[wanted[1]].decision == "too_small"
    assert index.recent.keys.dtype == "S65" and len(index.recent) + len(index.main) == rows
    assert isinstance(index.recent.values, pa.Table)


def test_the_key_order_is_the_stable_sort_of_the_keys():
    rng = np.random.default_rng(5)
    digests = [f"{rng.integers(0, 2**63):016x}" * 4 for _ in range(300)]
    digests += [digests[0][:-1] + "f", digests[0][:20] + "a" * 44]  # differences deep in the digest
    keys = np.array([f"{digests[i]}{t}" for i in rng.integers(0, len(digests), 2000) for t in (0, 3)], "S65")
    assert np.array_equal(key_order(keys), np.argsort(keys, kind="stable"))
