"""Where every file of `dataset/` lives, and how its names are built and parsed.

```
dataset/
  README.md  manifest.json  report.html  sizes.json
  train-000000.tar  train-000000.parquet  train-000000_stats.json   ...
  validation-000000.tar  ...
  shardindex-train.json  shardindex-validation.json                   (wids)
  rejected/rejected-000000.parquet                                     ...
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DATASET = "dataset"
REJECTED = f"{DATASET}/rejected"
SPLITS = ("train", "validation")

MANIFEST = f"{DATASET}/manifest.json"
CARD = f"{DATASET}/README.md"
REPORT = f"{DATASET}/report.html"
SIZES = f"{DATASET}/sizes.json"

_SHARD_FILE = re.compile(r"^(train|validation)-(\d{6})(\.tar|\.parquet|_stats\.json)$")
_REJECTED_FILE = re.compile(r"^rejected-(\d{6})\.parquet$")


@dataclass(frozen=True, order=True, slots=True)
class ShardId:
    """One shard: `{split}-{index:06d}` plus its three files."""

    split: str
    index: int

    @property
    def stem(self) -> str:
        return f"{self.split}-{self.index:06d}"

    @property
    def tar_name(self) -> str:
        return f"{self.stem}.tar"

    @property
    def tar(self) -> str:
        return f"{DATASET}/{self.tar_name}"

    @property
    def sidecar(self) -> str:
        return f"{DATASET}/{self.stem}.parquet"

    @property
    def stats(self) -> str:
        return f"{DATASET}/{self.stem}_stats.json"


def parse_shard_file(name: str) -> tuple[ShardId, str] | None:
    """`train-000003_stats.json` -> (ShardId("train", 3), "_stats.json"); other names -> None."""
    match = _SHARD_FILE.match(name)
    if not match:
        return None
    return ShardId(match.group(1), int(match.group(2))), match.group(3)


def wids_index(split: str) -> str:
    return f"{DATASET}/shardindex-{split}.json"


def rejected_file(index: int) -> str:
    return f"{REJECTED}/rejected-{index:06d}.parquet"


def parse_rejected_file(name: str) -> int | None:
    match = _REJECTED_FILE.match(name)
    return int(match.group(1)) if match else None
