"""`manifest.json`: what produced the dataset and what it holds — versions, the settings
fingerprint and thresholds, the split rule, model and hash ids, cumulative counts per split and
per drop reason, and one entry per run. Nothing in it depends on the wall clock.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, get_args

from midshard.settings import OUTPUT_FIELDS, Settings
from midshard.store import Store
from midshard.writers.layout import MANIFEST, SPLITS
from midshard.writers.sidecars import ShardStats, dumps_pretty
from midshard.writers.split import VALIDATION_MODULUS
from midshard.writers.tally import Tally

FORMAT = "midshard-dataset/1"
RunKind = Literal["scrape", "refresh", "rebuild", "import"]
VERSIONED_PACKAGES = ("midshard", "webdataset", "pillow", "imagehash", "onnxruntime", "pyarrow")
SPLIT_RULE = (
    f"validation iff int(sha256(salt + '\\0' + normalised prompt)[:8 bytes], big-endian) % "
    f"{VALIDATION_MODULUS} == 0; normalised = NFKC, casefold, whitespace runs -> one space, stripped"
)


@dataclass(frozen=True)
class RunInfo:
    """What the calling flow knows about this run (no wall-clock values: they would break rebuilds)."""

    kind: RunKind
    funnel: Mapping[str, int] = field(default_factory=dict)  # stage -> count, in pipeline order
    models: Mapping[str, str] = field(default_factory=dict)  # component -> model / hash id
    sources: Sequence[str] = ()  # channel ids, export file hashes (never a token or signed URL)
    versions: Mapping[str, str] = field(default_factory=dict)  # extra component versions (e.g. prefect)

    def __post_init__(self) -> None:
        if self.kind not in get_args(RunKind):
            raise ValueError(f"run kind {self.kind!r} not in {get_args(RunKind)}")
        for stage, count in self.funnel.items():
            if type(count) is not int or count < 0:
                raise ValueError(f"funnel stage {stage!r}: {count!r} is not a count")


def run_id(run: RunInfo, sample_keys: Sequence[str], rejection_keys: Sequence[str]) -> str:
    """Identity of a run = its kind and inputs, so rerunning a killed write is the same run."""
    digest = hashlib.sha256(run.kind.encode())
    for keys in (sorted(sample_keys), sorted(rejection_keys)):
        digest.update(b"\x01" + "\n".join(keys).encode())
    return digest.hexdigest()[:16]


def versions(extra: Mapping[str, str]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return {**found, **extra}


def previous_runs(store: Store) -> list[dict[str, Any]]:
    if not store.exists(MANIFEST):
        return []
    return list(json.loads(store.read_bytes(MANIFEST)).get("runs", []))


def run_entry(
    run: RunInfo,
    rid: str,
    settings: Settings,
    input_samples: int,
    input_rejections: int,
    shards: Mapping[str, Sequence[ShardStats]],
    rejections_written: int,
) -> dict[str, Any]:
    mine = [s for split in SPLITS for s in shards[split] if s.run == rid]
    return {
        "id": rid,
        "kind": run.kind,
        "funnel": [{"stage": stage, "count": count} for stage, count in run.funnel.items()],
        "models": dict(run.models),
        "sources": list(run.sources),
        "settings_fingerprint": settings.output_fingerprint(),
        "input_samples": input_samples,
        "input_rejections": input_rejections,
        "samples_written": {split: sum(s.count for s in mine if s.shard.split == split) for split in SPLITS},
        "rejections_written": rejections_written,
        "shards": [s.shard.tar_name for s in mine],
    }


def merge_runs(runs: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Append this run, or replace its earlier (interrupted) attempt in place."""
    ids = [r["id"] for r in runs]
    if entry["id"] in ids:
        return [entry if r["id"] == entry["id"] else r for r in runs]
    return [*runs, entry]


def build_manifest(
    settings: Settings, tally: Tally, runs: list[dict[str, Any]], extra_versions: Mapping[str, str]
) -> dict[str, Any]:
    models: dict[str, Any] = {"phash_impl": list(tally.phash_impls), "nsfw_scorer": list(tally.nsfw_scorers)}
    for entry in runs:
        models.update(entry["models"])
    return {
        "format": FORMAT,
        "versions": versions(extra_versions),
        "settings_fingerprint": settings.output_fingerprint(),
        "settings": settings.model_dump(mode="json", include=set(OUTPUT_FIELDS)),
        "split": {"rule": SPLIT_RULE, "salt": settings.split_salt, "modulus": VALIDATION_MODULUS},
        "models": models,
        "counts": {
            "samples": {**tally.samples, "total": tally.total},
            "prompts": {**tally.prompts, "total": sum(tally.prompts.values())},
            "train_to_validation": tally.ratio,
            "shards": tally.shards,
            "tar_bytes": tally.tar_bytes,
            "rejected": {"total": sum(tally.rejected.values()), "by_reason": tally.rejected},
            "image_formats": tally.image_formats,
            "mj_versions": tally.mj_versions,
        },
        "runs": runs,
    }


def write_manifest(store: Store, manifest: dict[str, Any]) -> None:
    store.write_bytes(MANIFEST, dumps_pretty(manifest))
