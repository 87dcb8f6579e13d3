"""Cumulative figures over the whole dataset, read back from the sidecars and rejected files
(so they are right after any number of incremental runs). Shared by the manifest, card and report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow.compute as pc

from midshard.records import Reason
from midshard.writers.layout import SPLITS
from midshard.writers.split import normalise_prompt
from midshard.writers.state import DatasetState


@dataclass(frozen=True, slots=True)
class Tally:
    samples: dict[str, int]  # split -> samples
    prompts: dict[str, int]  # split -> distinct normalised prompts
    shards: dict[str, int]
    tar_bytes: dict[str, int]
    rejected: dict[str, int]  # reason code -> candidates, in pipeline order
    image_formats: dict[str, int]
    mj_versions: dict[str, int]  # "" = not specified in the prompt
    phash_impls: tuple[str, ...]
    nsfw_scorers: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    @property
    def ratio(self) -> str:
        """`train:validation` as `20.13:1` (`n/a` with no validation sample yet)."""
        if not self.samples["validation"]:
            return "n/a"
        return f"{self.samples['train'] / self.samples['validation']:.2f}:1"


def tally(state: DatasetState) -> Tally:
    kept = state.kept.to_pydict()
    prompts: dict[str, set[str]] = {split: set() for split in SPLITS}
    for split, caption in zip(kept["split"], kept["caption"], strict=True):
        prompts[split].add(normalise_prompt(caption))
    order = {reason.value: n for n, reason in enumerate(Reason)}
    # a candidate kept by a later run no longer counts as dropped
    kept_later = pc.is_in(state.rejected.column("key"), value_set=state.kept.column("key").combine_chunks())
    still_dropped = state.rejected.column("reason").filter(pc.invert(kept_later))
    reasons = {row["values"]: row["counts"] for row in pc.value_counts(still_dropped).to_pylist()}
    return Tally(
        samples={split: sum(s.count for s in state.shards[split]) for split in SPLITS},
        prompts={split: len(prompts[split]) for split in SPLITS},
        shards={split: len(state.shards[split]) for split in SPLITS},
        tar_bytes={split: sum(s.filesize for s in state.shards[split]) for split in SPLITS},
        rejected={r: reasons[r] for r in sorted(reasons, key=lambda r: (order.get(r, len(order)), r))},
        image_formats=dict(sorted(Counter(kept["image_format"]).items())),
        mj_versions=dict(sorted(Counter(kept["mj_version"]).items())),
        phash_impls=tuple(sorted(set(kept["phash_impl"]))),
        nsfw_scorers=tuple(sorted(set(kept["nsfw_scorer"]))),
    )
