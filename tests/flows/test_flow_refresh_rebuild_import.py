"""refresh (incremental, from a settings file), rebuild (raw store only, byte-reproducible, offline)
and import-export (a DiscordChatExporter export with its media folder, into a local directory and
into a non-local fsspec filesystem)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from flows_kit import (
    Scraped,
    closed_port_url,
    dataset_files,
    kept_keys,
    memory_files,
    rejected_decisions,
    shards,
    truth_decisions,
    write_dce_export,
    write_toml,
)

from midshard.flows.pipeline import import_export, rebuild, refresh

pytestmark = pytest.mark.prefect

GROWTH = 30  # new messages per channel between the scrape and the refresh


def test_refresh_fetches_only_new_messages_and_appends_shards(scraped: Scraped, tmp_path: Path) -> None:
    emulator, root = scraped.emulator, tmp_path / "data"
    shutil.copytree(scraped.root, root)  # the session's scrape stays as it was for the other tests
    config = write_toml(
        tmp_path / "midshard.toml",
        {"root": str(root), "api_base": emulator.api_base, "channels": emulator.channel_ids},
    )
    old_shards = shards(dataset_files(root))
    served_before = emulator.stats()["messages_served"]
    emulator.grow(GROWTH)

    result = refresh(config=str(config))

    # every message the scrape did not see, once (other tests of this session may have grown it too)
    unseen = len(emulator.truth()) - len(scraped.truth)
    assert unseen >= GROWTH * len(emulator.channel_ids)
    assert emulator.stats()["messages_served"] - served_before == unseen
    files = dataset_files(root)
    assert {name: files[name] for name in old_shards} == old_shards  # old shards byte-unchanged
    new_shards = set(shards(files)) - set(old_shards)
    assert new_shards and {f"{name}" for name in new_shards} == set(result.shards_written)
    truth = truth_decisions(emulator.truth())
    assert kept_keys(root) == {key for key, decision in truth.items() if decision == "keep"}
    assert rejected_decisions(root) == {k: d for k, d in truth.items() if d != "keep"}


def test_rebuild_twice_is_byte_identical_and_offline(scraped: Scraped, tmp_path: Path) -> None:
    offline = scraped.settings.model_copy(update={"api_base": closed_port_url()})
    requests_before = scraped.emulator.stats()["requests"]["total"]
    datasets = []
    for name in ("first", "second"):
        out = tmp_path / name
        result = rebuild(offline.model_copy(update={"root": str(out)}), raw_root=str(scraped.root))
        assert result.shards_written
        datasets.append(dataset_files(out))
    assert scraped.emulator.stats()["requests"]["total"] == requests_before  # no API, no CDN
    assert datasets[0] == datasets[1]
    # the same samples and decisions as the incremental runs that filled the raw store
    assert kept_keys(tmp_path / "first") == kept_keys(scraped.root)
    assert rejected_decisions(tmp_path / "first") == rejected_decisions(scraped.root)


@pytest.fixture
def memory_root() -> Iterator[str]:
    url = "memory://midshard-flows-test"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_import_export_locally_and_on_a_memory_filesystem(
    scraped: Scraped, tmp_path: Path, memory_root: str
) -> None:
    channel_id = scraped.emulator.channel_ids[0]
    export = write_dce_export(scraped.root, channel_id, tmp_path / "export")
    settings = scraped.settings.model_copy(update={"api_base": closed_port_url()})

    local = import_export(settings.model_copy(update={"root": str(tmp_path / "local")}), [str(export)], True)
    remote = import_export(settings.model_copy(update={"root": memory_root}), [str(export)], True)

    assert local.shards_written and remote.shards_written == local.shards_written
    assert remote.report.startswith("memory://") and remote.report.endswith("dataset/report.html")
    on_memory = {
        n.removeprefix("dataset/"): d
        for n, d in memory_files(memory_root).items()
        if n.startswith("dataset/")
    }
    assert on_memory == dataset_files(tmp_path / "local")
    assert any(n.startswith("raw/exports/") for n in memory_files(memory_root))
    # the export holds the channel as it was scraped: its samples are the ones the truth keeps
    truth = [line for line in scraped.truth if line["channel_id"] == str(channel_id)]
    keep = {key for key, decision in truth_decisions(truth).items() if decision == "keep"}
    assert kept_keys(tmp_path / "local") == keep
