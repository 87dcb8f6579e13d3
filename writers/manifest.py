"""`manifest.json`: what produced the dataset and what it holds — versions, the settings
fingerprint and thresholds, the split rule, model and hash ids, cumulative counts per split and
per drop reason, and one entry per run. Nothing in it depends on the wall clock.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, get_args

from midshard.errors import MidshardError
from midshard.settings import OUTPUT_FIELDS, RULE_FIELDS, Settings
from midshard.store import Store
from midshard.writers.layout import MANIFEST, SPLITS
from midshard.writers.sidecars import ShardStats, dumps_pretty
from midshard.writers.split import VALIDATION_MODULUS
from midshard.writers.tally import Tally

FORMAT = "midshard-dataset/1"


class SettingsChangedError(MidshardError):
    """A run asked to add to a dataset under rules other than the ones it was made with."""


RunKind = Literal["scrape", "refresh", "rebuild", "import"]
VERSIONED_PACKAGES = ("midshard", "webdataset", "pillow", "imagehash", "onnxruntime", "pyarrow")
SPLIT_RULE = (
    f"validation iff int(sha256(salt + '\\0' + normalised prompt)[:8 bytes], big-endian) % "
    f"{VALIDATION_MODULUS} == 0; normalised = NFKC, casefold, whitespace runs -> one space, stripped"
)


@dataclass(frozen=True)
class RunInfo:
    """What the calling flow knows about this run (no wall-clock values: they would break rebuilds).

    `id` names the run by its inputs (`run_id`), so rerunning a killed write is the same run.
    `steps` are the per-step counts over every candidate decided so far (seen, dropped), a pure
    function of the stored decisions like `funnel`; `decisions` is how many parts of
    `derived/decisions/` the dataset holds once this run is written.
    """

    kind: RunKind
    id: str
    funnel: Mapping[str, int] = field(default_factory=dict)  # stage -> count, in pipeline order
    steps: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # step -> seen, dropped
    models: Mapping[str, str] = field(default_factory=dict)  # component -> model / hash id
    sources: Sequence[str] = ()  # channel ids, export file hashes (never a token or signed URL)
    versions: Mapping[str, str] = field(default_factory=dict)  # extra component versions (e.g. prefect)
    decisions: int = 0

    def __post_init__(self) -> None:
        if self.kind not in get_args(RunKind):
            raise ValueError(f"run kind {self.kind!r} not in {get_args(RunKind)}")
        for stage, count in self.funnel.items():
            if type(count) is not int or count < 0:
                raise ValueError(f"funnel stage {stage!r}: {count!r} is not a count")


def run_id(kind: str, inputs: Iterable[str]) -> str:
    """Identity of a run = its kind and the names of its inputs (decision parts, or keys)."""
    digest = hashlib.sha256(kind.encode())
    for name in inputs:
        digest.update(b"\x01" + name.encode())
    return digest.hexdigest()[:16]


def previous_manifest(store: Store) -> dict[str, Any]:
    return json.loads(store.read_bytes(MANIFEST)) if store.exists(MANIFEST) else {}


def check_settings(store: Store, settings: Settings) -> None:
    """Refuse to add to a dataset under other rules than it was made with: its manifest (and every
    sample in it) would then claim rules the shards do not obey. `rebuild` applies new rules."""
    recorded = previous_manifest(store).get("settings", {})
    current = settings.model_dump(mode="json", include=set(RULE_FIELDS))
    changed = [name for name in RULE_FIELDS if name in recorded and recorded[name] != current[name]]
    if changed:
        detail = ", ".join(f"{name} {recorded[name]!r} -> {current[name]!r}" for name in changed)
        raise SettingsChangedError(
            f"the dataset in {store.url} was made with other rules ({detail}): run `midshard rebuild` "
            "to apply them to everything (cached image features are reused: nothing is decoded or "
            "scored again), or run with the recorded settings"
        )


def decisions_written(store: Store) -> int:
    """How many parts of derived/decisions/ the dataset holds (a run writes the parts after them)."""
    return int(previous_manifest(store).get("decisions", {}).get("parts", 0))


def versions(extra: Mapping[str, str]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return {**found, **extra}


def previous_runs(store: Store) -> list[dict[str, Any]]:
    return list(previous_manifest(store).get("runs", []))


def run_entry(
    run: RunInfo,
    settings: Settings,
    input_samples: int,
    input_rejections: int,
    shards: Mapping[str, Sequence[ShardStats]],
    rejections_written: int,
) -> dict[str, Any]:
    mine = [s for split in SPLITS for s in shards[split] if s.run == run.id]
    return {
        "id": run.id,
        "kind": run.kind,
        "funnel": [{"stage": stage, "count": count} for stage, count in run.funnel.items()],
        "steps": [{"step": name, **counts} for name, counts in run.steps.items()],
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
    settings: Settings, tally: Tally, runs: list[dict[str, Any]], run: RunInfo
) -> dict[str, Any]:
    models: dict[str, Any] = {"phash_impl": list(tally.phash_impls), "nsfw_scorer": list(tally.nsfw_scorers)}
    for entry in runs:
        models.update(entry["models"])
    return {
        "format": FORMAT,
        "versions": versions(run.versions),
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
        "decisions": {"parts": run.decisions},
    }


def write_manifest(store: Store, manifest: dict[str, Any]) -> None:
    store.write_bytes(MANIFEST, dumps_pretty(manifest))
