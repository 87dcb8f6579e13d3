"""Rebuilds are byte-identical; refreshes append without rewriting; reruns change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from writers_fixtures import Synthetic, make_dataset, snapshot, write

from midshard.records import Rejection
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.manifest import SettingsChangedError


@pytest.mark.slow
def test_two_rebuilds_are_byte_identical(tmp_path: Path, data: Synthetic, settings: Settings) -> None:
    write(tmp_path / "a", data, settings, kind="rebuild")
    shuffled = Synthetic(list(reversed(data.samples)), list(reversed(data.rejections)), data.images)
    write(tmp_path / "b", shuffled, settings, kind="rebuild")  # input order does not matter
    first = snapshot(tmp_path / "a")
    assert first == snapshot(tmp_path / "b")
    assert {
        "README.md",
        "manifest.json",
        "report.html",
        "sizes.json",
        "rejected/rejected-000000.parquet",
    } <= set(first)
    write(tmp_path / "a", data, settings, kind="rebuild", rebuild=True)  # the flag clears dataset/ first
    assert snapshot(tmp_path / "a") == first


def test_refresh_appends_new_shards_and_never_rewrites_old_ones(tmp_path: Path, settings: Settings) -> None:
    old = make_dataset(settings.split_salt, train_prompts=6, validation_prompts=2, rejections=4)
    new = make_dataset(
        settings.split_salt,
        train_prompts=5,
        validation_prompts=2,
        first_message=1_300_000_000_000_000_000,
        prompt_start=500,
        rejections=5,
    )
    first = write(tmp_path, old, settings)
    before = snapshot(tmp_path)
    # the refresh's input overlaps the old data (already written keys are skipped)
    both = Synthetic(old.samples[:5] + new.samples, new.rejections, {**old.images, **new.images})
    summary = write(tmp_path, both, settings, kind="refresh")
    after = snapshot(tmp_path)

    assert summary.skipped == 5
    assert sum(summary.written.values()) == len(new.samples)
    for name, blob in before.items():
        if name.endswith((".tar", ".parquet", "_stats.json")):
            assert after[name] == blob, f"{name} was rewritten"
    for split in ("train", "validation"):
        old_count = sum(1 for s in first.shards_written if s.startswith(split))
        new_names = [s for s in summary.shards_written if s.startswith(split)]
        assert new_names[0] == f"{split}-{old_count:06d}.tar"
        index = json.loads(after[f"shardindex-{split}.json"])
        assert len(index["shardlist"]) == old_count + len(new_names)
    manifest = json.loads(after["manifest.json"])
    total = len(old.samples) + len(new.samples)
    assert manifest["counts"]["samples"]["total"] == total == sum(json.loads(after["sizes.json"]).values())
    assert manifest["counts"]["rejected"]["total"] == len(old.rejections) + len(new.rejections)
    assert [r["kind"] for r in manifest["runs"]] == ["scrape", "refresh"]
    assert manifest["runs"][1]["shards"] == list(summary.shards_written)
    assert sorted(p for p in after if p.startswith("rejected/")) == [
        "rejected/rejected-000000.parquet",
        "rejected/rejected-000001.parquet",
    ]
    assert after["README.md"] != before["README.md"] and after["report.html"] != before["report.html"]


def test_rerunning_the_same_write_changes_nothing(written: Path, data: Synthetic, settings: Settings) -> None:
    before = snapshot(written)
    summary = write(written, data, settings)
    assert summary.skipped == len(data.samples) and not summary.shards_written
    assert summary.rejections_written == 0
    assert snapshot(written) == before  # the manifest records the rerun as the same run


def test_appending_with_another_salt_is_refused(written: Path, data: Synthetic, settings: Settings) -> None:
    other = settings.model_copy(update={"split_salt": "another-salt"})
    more = make_dataset(other.split_salt, 2, 1, first_message=1_400_000_000_000_000_000, rejections=0)
    with pytest.raises(SettingsChangedError, match="split_salt"):
        write(written, more, other)


def test_a_candidate_kept_later_no_longer_counts_as_dropped(tmp_path: Path, settings: Settings) -> None:
    first = make_dataset(settings.split_salt, 3, 1, rejections=0)
    late = first.samples.pop()  # e.g. its download failed the first time
    first.rejections = [
        Rejection(
            late.key,
            late.message_id,
            late.channel_id,
            0,
            0,
            late.timestamp,
            late.kind,
            late.prompt,
            "download_failed:http_500",
        )
    ]
    write(tmp_path, first, settings)
    assert json.loads((tmp_path / "dataset/manifest.json").read_text())["counts"]["rejected"]["total"] == 1
    write(tmp_path, Synthetic([late], [], first.images), settings, kind="refresh")
    counts = json.loads((tmp_path / "dataset/manifest.json").read_text())["counts"]
    assert counts["rejected"]["total"] == 0 and counts["samples"]["total"] == len(first.samples) + 1


def test_an_empty_run_and_a_train_only_dataset_are_written(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path, Synthetic(), settings)
    card = (tmp_path / "dataset/README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["configs"][0]["data_files"] == []
    train_only = make_dataset(settings.split_salt, 2, 0, rejections=0)
    write(tmp_path, train_only, settings)
    meta = yaml.safe_load((tmp_path / "dataset/README.md").read_text().split("---")[1])
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "train-*.tar"}]
    assert not (tmp_path / "dataset/shardindex-validation.json").exists()


def test_an_fsspec_store_gets_the_same_bytes(written: Path, data: Synthetic, settings: Settings) -> None:
    store = Store("memory://midshard-writers-test")
    try:
        write("memory://midshard-writers-test", data, settings)
        base = store.path("dataset")
        files = {path[len(base) + 1 :]: store.fs.cat_file(path) for path in store.fs.find(base)}
        assert files == snapshot(written)
    finally:
        store.fs.rm(store.root, recursive=True)
