"""Fixtures for the writer tests: synthetic data, small shards, a dataset written once per module.

pytest puts this directory on sys.path (no __init__.py), so tests import `writers_fixtures`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from writers_fixtures import Synthetic, make_dataset, write

from midshard.settings import Settings

# Hugging Face must never reach the network; HF and wids cache into temp dirs removed at exit.
# (Set before any test imports `datasets`, which reads them at import time.)
_CACHE = tempfile.mkdtemp(prefix="midshard-test-writers-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(Path(_CACHE) / "hf")
os.environ["WIDS_CACHE"] = str(Path(_CACHE) / "wids")  # wids copies every shard it opens there


@pytest.fixture(scope="session")
def settings() -> Settings:
    # small shards so both splits span several of them; a byte cap that also cuts some shards early
    return Settings(shard_max_count=4, shard_max_bytes=30_000, report_thumbnails=8)


@pytest.fixture(scope="session")
def data(settings: Settings) -> Synthetic:
    return make_dataset(settings.split_salt)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, data: Synthetic, settings: Settings) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    write(root, data, settings)
    return root
