"""The Dask task runner on a real `distributed.LocalCluster`, with the session's Prefect server: the
dataset it writes is byte-identical to the default thread runner's, whether the flow starts its own
LocalCluster or joins an existing scheduler (`dask_address`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from flows_kit import (
    PrefectServer,
    Scraped,
    closed_port_url,
    dataset_files,
    emulator_config,
    flow_settings,
)

from midshard.emulator import running_emulator
from midshard.flows.pipeline import rebuild, scrape

pytestmark = pytest.mark.prefect


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """An existing Dask scheduler (TCP), as a user's cluster would be: two single-threaded worker
    processes, which share nothing with this process but the data root (as machines share a
    bucket or a network file system)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_scrape_on_a_dask_local_cluster_writes_the_threads_dataset(
    prefect_server: PrefectServer, bot_token: str, emulator_cache: Path, tmp_path: Path
) -> None:
    # one emulator for both runs: sample JSON records the attachment URLs, port included
    with running_emulator(emulator_config(emulator_cache, channels=1, messages=30)) as emulator:
        threads = scrape(flow_settings(emulator, tmp_path / "threads"))
        # task_runner="dask" without an address: the flow starts its own LocalCluster
        dask = scrape(flow_settings(emulator, tmp_path / "dask", task_runner="dask"))
    assert dask.collect_errors == {} and dask.shards_written
    assert (dask.funnel, dask.dataset, dask.shards_written) == (
        threads.funnel,
        threads.dataset,
        threads.shards_written,
    )
    assert dataset_files(tmp_path / "dask") == dataset_files(tmp_path / "threads")


def samples_part(files: dict[str, bytes]) -> dict[str, bytes]:
    """The shards, their sidecars and indexes: what a rebuild must reproduce from a scrape's raw
    store (the manifest, stats and report also record which kind of run wrote them)."""
    return {
        name: data
        for name, data in files.items()
        if "/" not in name and not name.endswith(("manifest.json", "_stats.json", "report.html"))
    }


def test_rebuild_on_an_existing_dask_scheduler_writes_the_threads_shards(
    scraped: Scraped, cluster: LocalCluster, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(scraped.root / "raw", raw / "raw")  # no derived/: every feature computed on Dask
    settings = scraped.settings.model_copy(
        update={
            "root": str(tmp_path / "dask"),
            "api_base": closed_port_url(),
            "task_runner": "dask",
            "dask_address": cluster.scheduler_address,
        }
    )

    result = rebuild(settings, raw_root=str(raw))
    assert len(cluster.scheduler_info["workers"]) == 2

    assert (tmp_path / "dask" / "derived" / "features").is_dir()  # written by the Dask worker
    assert sorted(p.name for p in raw.iterdir()) == ["raw"]  # the raw root is only read
    assert result.shards_written == scraped.result.shards_written
    assert result.dataset == scraped.result.dataset
    expected = samples_part(scraped.dataset)
    assert any(name.endswith(".tar") for name in expected)
    assert samples_part(dataset_files(tmp_path / "dask")) == expected
