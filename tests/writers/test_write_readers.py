"""Real readers over a written dataset: webdataset, wids and Hugging Face `datasets`.

The loading snippets are taken from docs/writing.md and the README, and executed as they are
written there. The
fixture's first validation samples are PNG and later ones WebP/JPEG: the layout that loses images
with HF's feature inference (docs/writing.md, PNG and WebP in one dataset).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image
from writers_fixtures import Synthetic

DOC = Path(__file__).parents[2] / "docs" / "writing.md"
README = DOC.parents[1] / "README.md"


def snippet(name: str) -> str:
    match = re.search(rf"<!-- test: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/writing.md has no '{name}' snippet"
    return match.group(1)


def run_snippet(name: str, dataset_dir: Path, replace: tuple[str, str] | None = None) -> dict:
    code = snippet(name)
    if replace:
        code = code.replace(*replace)
    namespace: dict = {"dataset_dir": str(dataset_dir / "dataset")}
    exec(compile(code, f"docs/writing.md:{name}", "exec"), namespace)
    return namespace


def expected(data: Synthetic, split: str) -> list:
    from midshard.writers.split import split_of

    return sorted(
        (s for s in data.samples if split_of(s.prompt, "midshard-v1") == split), key=lambda s: s.key
    )


def test_fixture_mixes_formats_where_hf_inference_would_lose_them(data: Synthetic) -> None:
    validation = expected(data, "validation")
    assert [s.format for s in validation[:5]] == ["png"] * 5
    assert {"webp", "jpeg"} <= {s.format for s in expected(data, "train")}
    assert "webp" in {s.format for s in validation}


@pytest.mark.parametrize("split", ["train", "validation"])
def test_webdataset_iterates_every_sample(written: Path, data: Synthetic, split: str) -> None:
    namespace = run_snippet("webdataset", written, ("train", split))
    decoded = list(namespace[split])
    want = expected(data, split)
    assert [key for key, *_ in decoded] == [s.key for s in want]
    for (_, image, prompt, meta), sample in zip(decoded, want, strict=True):
        assert image.size == (sample.width, sample.height)
        assert (prompt, meta["sha256"], meta["nsfw_score"]) == (
            sample.prompt,
            sample.sha256,
            sample.nsfw_score,
        )
    # undecoded, the members are the original bytes
    raw = wds.WebDataset(namespace["urls"], shardshuffle=False)
    for item, sample in zip(raw, want, strict=True):
        assert item[sample.format] == data.read_image(sample)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_wids_random_access_returns_the_same_samples(written: Path, data: Synthetic, split: str) -> None:
    import wids

    namespace = run_snippet("wids", written, ("validation", split))
    dataset = namespace[split]
    want = expected(data, split)
    assert len(dataset) == len(want)
    last = namespace["sample"]
    assert (last["key"], last["prompt"], last["meta"]["sha256"]) == (
        want[-1].key,
        want[-1].prompt,
        want[-1].sha256,
    )
    assert last["image"].size == (want[-1].width, want[-1].height)
    raw = wids.ShardListDataset(str(written / "dataset" / f"shardindex-{split}.json"), transformations=[])
    for index in reversed(range(len(want))):  # random access, not a stream
        item, sample = raw[index], want[index]
        assert item["__key__"] == sample.key
        assert item["." + sample.format].getvalue() == data.read_image(sample)
        assert item[".txt"].getvalue().decode() == sample.prompt


def test_huggingface_loads_every_sample_and_field_of_both_splits(written: Path, data: Synthetic) -> None:
    import datasets

    namespace = run_snippet("huggingface", written)
    ds = namespace["ds"]
    assert set(ds) == {"train", "validation"}
    assert isinstance(namespace["image"], Image.Image)
    formats = sorted({s.format for s in data.samples})
    for split in ("train", "validation"):
        table = ds[split]
        for fmt in formats:
            table = table.cast_column(fmt, datasets.Image(decode=False))
        want = expected(data, split)
        assert table.num_rows == len(want)
        for row, sample in zip(table, want, strict=True):
            assert row["__key__"] == sample.key
            assert row["txt"] == sample.prompt
            meta = row["json"]
            assert meta["key"] == sample.key and meta["params"] and meta["image_format"] == sample.format
            assert None not in meta.values() and len(meta) == 26
            assert row[sample.format]["bytes"] == data.read_image(sample)  # nothing re-encoded or lost
            assert all(row[other] is None for other in formats if other != sample.format)
        images = ds[split][0][want[0].format]
        assert images.size == (want[0].width, want[0].height)
        assert Image.open(io.BytesIO(data.read_image(want[0]))).size == images.size


def test_the_readme_loading_block_reads_the_dataset(written: Path, data: Synthetic) -> None:
    """The README's one Python block, run as written with `midshard-data` being the written root."""
    blocks = re.findall(r"### Loading\n.*?```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "README.md: one python block under '### Loading'"
    namespace: dict = {}
    exec(compile(blocks[0].replace("midshard-data", str(written)), "README.md:Loading", "exec"), namespace)
    train, validation = expected(data, "train"), expected(data, "validation")
    last = (namespace["key"], namespace["caption"])  # the stream was read to its end
    assert last == (train[-1].key, train[-1].prompt)
    assert namespace["image"].size == (train[-1].width, train[-1].height)
    assert len(namespace["indexed"]) == len(train) and namespace["first"]["__key__"] == train[0].key
    hf = namespace["hf"]
    assert (hf["train"].num_rows, hf["validation"].num_rows) == (len(train), len(validation))
