"""FeatureStore inside a daemonic process (a Dask worker): no pool, same features as the reference."""

from __future__ import annotations

import io
import math
import multiprocessing

import imagehash
import pytest
from PIL import Image

from midshard.cleaners.features import FeatureStore
from midshard.cleaners.nsfw import get_scorer
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

from .synthetic import natural_png


def _compute_as_a_daemon(root: str, keys: list[tuple[str, int]], out: multiprocessing.Queue) -> None:
    """Run in a daemonic process: clean_workers=0 asks for a pool, which a daemon may not start."""
    settings = Settings(root=root, min_pixels=64 * 64, clean_workers=0, nsfw_batch=2)
    features = FeatureStore(Store(root), settings)
    try:
        computed = features.compute(keys, RawStore(Store(root)))
    except Exception as error:  # reported, not hung on: the parent waits on the queue
        out.put({"error": repr(error)})
        return
    out.put(
        {
            "daemon": multiprocessing.current_process().daemon,
            "in_process": features.in_process(),
            "children": len(multiprocessing.active_children()),
            "decoded": features.decoded,
            "features": {key: (f.decision, f.phash, f.nsfw_score) for key, f in computed.items()},
        }
    )


@pytest.mark.slow
def test_features_are_computed_in_process_inside_a_daemonic_process(root, raw):
    images = [natural_png(seed, 96, 80) for seed in (31, 32, 33)]
    keys = [(raw.put_media(data), 0) for data in [*images, images[0][:500]]]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    daemon = context.Process(target=_compute_as_a_daemon, args=(root, keys, queue), daemon=True)
    daemon.start()
    report = queue.get(timeout=120)
    daemon.join(timeout=60)
    assert "error" not in report, report
    assert daemon.exitcode == 0
    assert report["daemon"] and report["in_process"] and report["children"] == 0
    assert report["decoded"] == 4

    scorer = get_scorer("open_nsfw")
    for (sha, tile), data in zip(keys, images, strict=False):
        decision, phash, score = report["features"][(sha, tile)]
        with Image.open(io.BytesIO(data)) as image:
            assert decision == "keep" and phash == int(str(imagehash.phash(image)), 16)
            (expected,) = scorer.score(scorer.prepare(image)[None])
        assert abs(score - float(expected)) < 1e-6
    decision, _, score = report["features"][keys[-1]]
    assert decision == "truncated_image" and math.isnan(score)
    # persisted like any other run: a later FeatureStore (here with a pool) decodes nothing
    settings = Settings(root=root, min_pixels=64 * 64, clean_workers=2, nsfw_batch=2)
    assert FeatureStore(raw.store, settings).get(keys).keys() == set(keys)


def test_one_worker_means_no_pool(small_settings):
    store = Store(small_settings.root)
    assert FeatureStore(store, small_settings.model_copy(update={"clean_workers": 1})).in_process()
    assert not FeatureStore(store, small_settings).in_process()  # 2 workers, and not a daemon
