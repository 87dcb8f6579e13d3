"""The dataset card `README.md`: Hugging Face metadata (YAML) and a human description.

The YAML is what makes `datasets.load_dataset(<dataset dir>)` load the right thing:
- `configs` points each split at its tars, so HF never picks the parquet sidecars instead
  (with as many .parquet as .tar files, HF's auto-detection chooses parquet);
- `dataset_info.features` declares every column, so HF does not infer them from the first 5
  samples of one tar — inference drops all but one image extension when PNG and WebP mix, fails on
  a null, and crashes on an empty first shard. Each row has exactly one non-null image column.
"""

from __future__ import annotations

from typing import Any

import yaml

from midshard.store import Store
from midshard.writers.layout import CARD, SPLITS
from midshard.writers.schema import SAMPLE_FIELDS, SIDECAR_FIELDS
from midshard.writers.tally import Tally
from midshard.writers.templates import render

_HF_DTYPES = {str: "string", int: "int64", float: "float64"}
_SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
]


def hf_features(image_formats: list[str]) -> list[dict[str, Any]]:
    """The HF `features` of one sample: the .json struct, one image column per format, .txt, keys."""
    struct = [{"name": name, "dtype": _HF_DTYPES[kind]} for name, (kind, _) in SAMPLE_FIELDS.items()]
    return [
        {"name": "json", "struct": struct},
        *({"name": fmt, "dtype": "image"} for fmt in image_formats),
        {"name": "txt", "dtype": "string"},
        {"name": "__key__", "dtype": "string"},
        {"name": "__url__", "dtype": "string"},
    ]


def card_metadata(figures: Tally) -> dict[str, Any]:
    splits = [split for split in SPLITS if figures.shards[split]]
    size = next((label for limit, label in _SIZE_CATEGORIES if figures.total < limit), "n>100M")
    return {
        "pretty_name": "Midjourney generations from Discord (midshard)",
        "license": "other",
        "license_name": "midjourney-and-discord-terms",
        "task_categories": ["text-to-image", "image-to-text"],
        "tags": ["midjourney", "webdataset", "synthetic", "journeydb"],
        "size_categories": [size],
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [{"split": split, "path": f"{split}-*.tar"} for split in splits],
            }
        ],
        "dataset_info": {"config_name": "default", "features": hf_features(list(figures.image_formats))},
    }


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def write_card(store: Store, manifest: dict[str, Any], figures: Tally) -> None:
    front = yaml.safe_dump(card_metadata(figures), sort_keys=False, allow_unicode=True, width=1000)
    body = render(
        "card.md.j2",
        manifest=manifest,
        figures=figures,
        splits=SPLITS,
        fields=SAMPLE_FIELDS,
        sidecar_fields=SIDECAR_FIELDS,
        human_bytes=human_bytes,
        brace={split: f"{split}-{{000000..{max(n - 1, 0):06d}}}.tar" for split, n in figures.shards.items()},
    )
    store.write_text(CARD, f"---\n{front}---\n\n{body}")
