"""The feature workers: alive only while their stage is, shared by every caller meanwhile, lean."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import psutil
import pytest

from midshard.cleaners.feature_workers import FeatureWorkers
from midshard.cleaners.features import FeatureStore, feature_workers
from midshard.settings import Settings

from .synthetic import natural_png


@pytest.mark.slow
def test_workers_live_exactly_as_long_as_their_stage(root, raw):
    settings = Settings(root=root, min_pixels=64 * 64, clean_workers=2, nsfw_batch=2, nsfw_scorer="none")
    keys = [(raw.put_media(natural_png(seed, 80, 80)), 0) for seed in range(90, 96)]
    with FeatureWorkers(2, "none") as workers:
        assert multiprocessing.active_children() == []  # nothing starts before there is work
        first = FeatureStore(raw.store, settings).compute(keys[:3], raw)  # two callers, one pool
        pids = {process.pid for process in multiprocessing.active_children()}
        assert len(pids) == 2
        second = FeatureStore(raw.store, settings).compute(keys, raw)
        assert {process.pid for process in multiprocessing.active_children()} == pids
    assert all(f.decision == "keep" for f in [*first.values(), *second.values()])
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="stage has ended"):
        workers.run([])  # nothing to run, but a stopped pool never starts again


def test_a_stage_gets_workers_only_when_it_computes_outside_this_process(root):
    assert isinstance(feature_workers(Settings(root=root, clean_workers=2)), FeatureWorkers)
    with feature_workers(Settings(root=root, clean_workers=1)):  # in-process: nothing to start
        assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_call_outside_a_stage_leaves_no_process_behind(root, raw):
    settings = Settings(root=root, min_pixels=64 * 64, clean_workers=2, nsfw_scorer="none")
    keys = [(raw.put_media(natural_png(seed, 80, 80)), 0) for seed in (97, 98)]
    out = FeatureStore(raw.store, settings).compute(keys, raw)
    assert all(out[key].decision == "keep" for key in keys)
    assert multiprocessing.active_children() == []


def test_a_worker_imports_only_what_it_computes_with():
    """No pyarrow, pydantic settings, Prefect, scipy (imagehash's DCT) or torch in a worker."""
    heavy = ["pyarrow", "pydantic", "prefect", "scipy", "torch", "imagehash", "numba", "pyvips"]
    probe = (
        "import sys, midshard.cleaners.feature_workers as w; "
        "w._init_worker('open_nsfw'); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
