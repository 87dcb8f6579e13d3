"""The tar shards and the files beside them, checked at the byte level."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from writers_fixtures import Synthetic, write

from midshard.cleaners.pipeline import unsigned_url
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.schema import SAMPLE_FIELDS, SIDECAR_FIELDS, sample_record
from midshard.writers.shards import TAR_MTIME, Entry, ShardStream


def raw_headers(blob: bytes) -> list[tuple[str, bytes, int, int]]:
    """(name, typeflag, mtime, size) of every header block, read straight from the tar bytes."""
    headers, offset = [], 0
    while offset < len(blob):
        block = blob[offset : offset + 512]
        if block == bytes(512):
            break
        name = block[:100].rstrip(b"\0").decode("ascii")
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        mtime = int(block[136:148].rstrip(b"\0 "), 8)
        assert block[257:262] == b"ustar"
        headers.append((name, block[156:157], mtime, size))
        offset += 512 + -(-size // 512) * 512
    assert not any(blob[offset:]), "only zero padding after the end-of-archive marker"
    return headers


def shards(root: Path, split: str) -> list[Path]:
    return sorted((root / "dataset").glob(f"{split}-*.tar"))


@pytest.mark.parametrize("split", ["train", "validation"])
def test_tar_headers_are_plain_ustar_with_fixed_mtime(written: Path, split: str) -> None:
    paths = shards(written, split)
    assert len(paths) >= 2
    for path in paths:
        for name, typeflag, mtime, _ in raw_headers(path.read_bytes()):
            assert typeflag == b"0", f"{path.name}: {name} is not a plain file (PAX/GNU header?)"
            assert mtime == TAR_MTIME
            assert name.isascii() and len(name) < 100
            key, _, ext = name.partition(".")
            assert key.isdigit() and len(key) == 23 and "." not in ext


@pytest.mark.parametrize("split", ["train", "validation"])
def test_members_are_sorted_adjacent_and_untouched(written: Path, data: Synthetic, split: str) -> None:
    by_key = {s.key: s for s in data.samples}
    keys: list[str] = []
    for path in shards(written, split):
        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
        names = [name for name, _ in members]
        assert names == sorted(names)  # sorted keys, and TarWriter's sorted extensions per key
        for number in range(0, len(members), 3):
            group = members[number : number + 3]
            key = group[0][0].split(".")[0]
            sample = by_key[key]
            files = {name.split(".", 1)[1]: blob for name, blob in group}
            assert set(files) == {sample.format, "json", "txt"}  # adjacent, complete
            assert files[sample.format] == data.read_image(sample)  # original bytes
            assert files["txt"].decode() == sample.prompt
            record = json.loads(files["json"])
            assert (
                files["json"]
                == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            )
            assert list(record) == sorted(SAMPLE_FIELDS)
            for name, (kind, _) in SAMPLE_FIELDS.items():
                assert type(record[name]) is kind, name  # constant types, never null
            assert record["key"] == key and record["split"] == split
            assert (record["status"], record["error_message"]) == ("success", "")
            assert record["sha256"] == hashlib.sha256(files[sample.format]).hexdigest()
            assert (record["original_width"], record["width"]) == (sample.width, sample.width)
            assert json.loads(record["params"]) == sample.params
            assert "?" not in record["url"]
            keys.append(key)
    assert keys == sorted(keys)
    assert set(keys) == {s.key for s in data.samples if s.key in keys}


def test_shard_sizes_follow_count_and_byte_limits(written: Path, settings: Settings) -> None:
    cut_by_bytes = False
    for sidecar in sorted((written / "dataset").glob("*.parquet")):
        table = pq.read_table(sidecar).to_pylist()
        assert 1 <= len(table) <= settings.shard_max_count
        tar_bytes = (written / "dataset" / table[0]["tar_file"]).read_bytes()
        payload = [
            row["file_size"] + len(_member(tar_bytes, row["key"], "json")) + len(row["caption"].encode())
            for row in table
        ]
        assert sum(payload[:-1]) < settings.shard_max_bytes  # ShardWriter's rule: roll over *before*
        cut_by_bytes |= len(table) < settings.shard_max_count and sum(payload) >= settings.shard_max_bytes
    assert cut_by_bytes, "the fixture should exercise the byte limit too"


def _member(tar_bytes: bytes, key: str, ext: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return tar.extractfile(f"{key}.{ext}").read()


def test_sidecars_stats_sizes_and_wids_indexes_agree_with_the_tars(written: Path) -> None:
    base = written / "dataset"
    sizes = json.loads((base / "sizes.json").read_text())
    assert sorted(sizes) == sorted(p.name for p in base.glob("*.tar"))
    for split in ("train", "validation"):
        index = json.loads((base / f"shardindex-{split}.json").read_text())
        assert (index["__kind__"], index["wids_version"]) == ("wids-shard-index-v1", 1)
        assert [s["url"] for s in index["shardlist"]] == [p.name for p in shards(written, split)]
        for entry in index["shardlist"]:
            tar = base / entry["url"]
            blob = tar.read_bytes()
            stats = json.loads((base / tar.name.replace(".tar", "_stats.json")).read_text())
            rows = pq.read_table(base / tar.name.replace(".tar", ".parquet")).to_pylist()
            assert entry["md5sum"] == stats["md5sum"] == hashlib.md5(blob).hexdigest()
            assert entry["filesize"] == stats["filesize"] == len(blob)
            assert entry["nsamples"] == stats["count"] == stats["successes"] == len(rows) == sizes[tar.name]
            assert stats["status_dict"] == {"success": len(rows)}
            assert not {"duration", "start_time", "end_time"} & set(stats)  # no wall clock
            with tarfile.open(tar) as archive:
                images = [m.name for m in archive if not m.name.endswith((".json", ".txt"))]
            assert [r["image_member"] for r in rows] == images
            for row in rows:
                assert set(row) == set(SAMPLE_FIELDS) | set(SIDECAR_FIELDS)
                image = blob[row["image_offset"] : row["image_offset"] + row["file_size"]]
                assert hashlib.sha256(image).hexdigest() == row["sha256"]


def _cut(entries: list[Entry], data: Synthetic, root: str) -> list[list[str]]:
    """The keys of each shard a ShardStream (4 samples, 30 kB) writes for `entries`."""
    shards: list[list[str]] = []
    stream = ShardStream(Store(root), "train", 0, 4, 30_000, data.read_image, lambda w: shards.append(w.keys))
    for entry in entries:
        stream.add(entry)
    stream.flush()
    return shards


def test_cutting_a_suffix_gives_the_suffix_of_the_shards(
    data: Synthetic, settings: Settings, tmp_path
) -> None:
    entries = [
        Entry.of(s, sample_record(s, settings.split_salt)) for s in sorted(data.samples, key=lambda s: s.key)
    ]
    shards = _cut(entries, data, str(tmp_path / "all"))
    assert len(shards) > 3
    done = sum(len(shard) for shard in shards[:2])
    assert _cut(entries[done:], data, str(tmp_path / "rest")) == shards[2:]


def test_a_changed_image_is_left_out_and_recorded(tmp_path: Path, data: Synthetic, settings) -> None:
    broken = Synthetic(data.samples, data.rejections, dict(data.images))
    target = sorted(data.samples, key=lambda s: s.key)[1]
    broken.images[target.sha256] = broken.images[target.sha256][:-1] + b"\0"  # same size, other bytes
    summary = write(tmp_path, broken, settings)
    assert summary.mismatched == (target,)
    assert sum(summary.written.values()) == len(data.samples) - 1
    tars = b"".join(path.read_bytes() for path in (tmp_path / "dataset").glob("*.tar"))
    assert target.key.encode() not in tars
    rejected = pq.read_table(tmp_path / "dataset/rejected/rejected-000000.parquet").to_pylist()
    (row,) = [r for r in rejected if r["key"] == target.key]
    assert (row["reason"], row["sha256"]) == ("media_mismatch", target.sha256)


@pytest.mark.parametrize(
    "change",
    [
        {"nsfw_score": float("nan")},
        {"nsfw_score": "0.3"},
        {"width": True},
        {"key": "12.3"},
        {"format": "bmp"},
    ],
)
def test_a_record_breaking_the_type_rules_is_refused_before_writing(tmp_path, data, settings, change) -> None:
    bad = Synthetic([*data.samples[:3], replace(data.samples[3], **change)], [], data.images)
    with pytest.raises(ValueError):
        write(tmp_path, bad, settings)
    assert not (tmp_path / "dataset").exists() or not list((tmp_path / "dataset").glob("*.tar"))


def test_signed_urls_lose_their_signature() -> None:
    signed = "https://cdn.discordapp.com/attachments/1/2/a_b.png?ex=66b1&is=66af&hm=9f2c&size=large"
    assert unsigned_url(signed) == "https://cdn.discordapp.com/attachments/1/2/a_b.png?size=large"
    assert unsigned_url("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&is=2&hm=3").endswith("/a.png")
