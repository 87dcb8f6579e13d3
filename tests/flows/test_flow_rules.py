"""What a dataset claims is what its shards obey, and its figures add up:

- a refresh under other rules than the dataset was made with is refused (nothing changes), and a
  rebuild applies them from the cached features (nothing decoded again);
- `nsfw_scorer = "none"` works end to end: scores are null (never NaN) in the JSON, the sidecars
  and for Hugging Face `datasets`;
- the report's funnel is the current dataset's (messages counted once), not a sum over runs;
- a damaged raw batch (truncated gzip, a torn line) is skipped with its file and line named, and
  everything else is decided.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from flows_kit import Scraped, closed_port_url, dataset_files, kept_keys, truth_decisions

from midshard.flows.pipeline import rebuild, refresh
from midshard.writers.manifest import SettingsChangedError

pytestmark = pytest.mark.prefect


def _copy(scraped: Scraped, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(scraped.root, root)
    return root


def _features_parts(root: Path) -> set[str]:
    return {p.name for p in (root / "derived" / "features").glob("*.parquet")}


def _sample_records(root: Path) -> list[dict]:
    records = []
    for shard in sorted((root / "dataset").glob("*.tar")):
        with tarfile.open(shard) as tar:
            records += [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    return records


def test_changed_rules_are_refused_and_a_rebuild_applies_them(scraped: Scraped, tmp_path: Path) -> None:
    root = _copy(scraped, tmp_path)
    config = tmp_path / "midshard.toml"
    config.write_text(f'root = "{root}"\napi_base = "{closed_port_url()}"\n')
    before = dataset_files(root)
    with pytest.raises(SettingsChangedError, match=r"nsfw_threshold 0\.5 -> 0\.05"):
        refresh(config=str(config), overrides={"nsfw_threshold": 0.05})
    assert dataset_files(root) == before

    cached = _features_parts(root)
    strict = scraped.settings.model_copy(update={"root": str(root), "nsfw_threshold": 0.05})
    rebuild(strict, raw_root=str(root))
    manifest = json.loads((root / "dataset" / "manifest.json").read_text())
    assert manifest["settings"]["nsfw_threshold"] == 0.05
    scores = [record["nsfw_score"] for record in _sample_records(root)]
    assert scores and all(score <= 0.05 for score in scores)  # the shards obey the manifest
    assert len(scores) < sum(scraped.result.dataset.values())
    assert _features_parts(root) == cached  # rebuilt from the cache: no image decoded again


def test_no_nsfw_scorer_gives_null_scores_everywhere(scraped: Scraped, tmp_path: Path) -> None:
    out = tmp_path / "unscored"
    settings = scraped.settings.model_copy(
        update={"root": str(out), "nsfw_scorer": "none", "api_base": closed_port_url()}
    )
    result = rebuild(settings, raw_root=str(scraped.root))
    assert sum(result.dataset.values()) >= sum(scraped.result.dataset.values())  # nothing dropped as NSFW
    records = _sample_records(out)
    assert records and all(r["nsfw_score"] is None and r["nsfw_scorer"] == "none" for r in records)
    sidecar = pq.read_table(next((out / "dataset").glob("train-*.parquet")))
    assert sidecar.column("nsfw_score").null_count == sidecar.num_rows
    from datasets import load_dataset

    loaded = load_dataset(str(out / "dataset"), split="train")
    assert all(row["json"]["nsfw_score"] is None for row in loaded)


def test_the_report_funnel_counts_each_message_once(scraped: Scraped, tmp_path: Path) -> None:
    root = _copy(scraped, tmp_path)
    config = tmp_path / "midshard.toml"
    emulator = scraped.emulator
    config.write_text(
        f'root = "{root}"\napi_base = "{emulator.api_base}"\nchannels = {json.dumps(emulator.channel_ids)}\n'
    )
    for _ in range(2):  # two refreshes: the funnel must not become the sum of the runs' funnels
        emulator.grow(5)
        refresh(config=str(config))
    manifest = json.loads((root / "dataset" / "manifest.json").read_text())
    messages = len(emulator.truth())
    assert [r["funnel"][0] for r in manifest["runs"]][-1] == {"stage": "messages", "count": messages}
    report = (root / "dataset" / "report.html").read_text()
    shown = re.search(r">messages</text><rect[^>]*/><text[^>]*>([\d,]+)</text>", report)
    assert shown and int(shown.group(1).replace(",", "")) == messages
    kept = {k for k, d in truth_decisions(emulator.truth()).items() if d == "keep"}
    assert kept_keys(root) == kept


def test_a_damaged_raw_batch_is_skipped_and_named(scraped: Scraped, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(scraped.root / "raw", raw / "raw")
    batches = sorted((raw / "raw" / "messages").rglob("*.jsonl.gz"))
    truncated, torn = batches[0], batches[-1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    lines = gzip.decompress(torn.read_bytes()).split(b"\n")
    lines[1] = lines[1][: len(lines[1]) // 2]  # a torn second line
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(b"\n".join(lines))
    torn.write_bytes(buffer.getvalue())

    settings = scraped.settings.model_copy(
        update={"root": str(tmp_path / "out"), "api_base": closed_port_url()}
    )
    result = rebuild(settings, raw_root=str(raw))
    assert any(truncated.name in p and "cut short" in p for p in result.problems), result.problems
    assert any(torn.name in p and "line 2" in p for p in result.problems), result.problems
    decided = result.funnel["messages"]
    assert 0 < decided < len(scraped.truth)  # everything readable was decided
    assert kept_keys(tmp_path / "out")


def test_a_changed_media_file_is_named_dropped_and_never_trusted_again(
    scraped: Scraped, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from midshard.cleaners.decisions import DecisionStore
    from midshard.cleaners.features import FeatureStore
    from midshard.store import Store

    root = _copy(scraped, tmp_path)
    record = _sample_records(root)[0]
    media = root / "raw" / "media" / record["sha256"][:2] / record["sha256"]
    data = bytearray(media.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: bit rot
    media.write_bytes(bytes(data))
    settings = scraped.settings.model_copy(update={"root": str(root), "api_base": closed_port_url()})

    for attempt in ("features cached before the change", "features computed again"):
        with caplog.at_level("WARNING"):
            rebuild(settings, raw_root=str(root))
        assert record["key"] not in kept_keys(root), attempt
        assert record["sha256"] in caplog.text  # named, with the path it was read from
        live = DecisionStore(Store(str(root))).previous([record["key"]])[record["key"]]
        assert live.decision == "media_mismatch", attempt
        rejected = pq.read_table(root / "dataset" / "rejected").to_pylist()
        assert {r["reason"] for r in rejected if r["key"] == record["key"]} == {"media_mismatch"}
        assert not FeatureStore(Store(str(root)), settings).get([(record["sha256"], 0)])  # never cached
        caplog.clear()
    truth = truth_decisions(scraped.truth)
    assert kept_keys(root) == {k for k, d in truth.items() if d == "keep"} - {record["key"]}
