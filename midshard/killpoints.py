"""Test hook that proves resumability: die by SIGKILL at a named point of the collector.

`MIDSHARD_TEST_KILL_AT=<label>:<n>` kills the process the n-th time `kill_point(label)` is reached
(n counts from 1). Unset, a call costs one environment lookup. The labels, in the order a batch
meets them:

    page_fetched        a history page arrived; its batch is not written yet        (mid-page)
    batch_unrenamed     the batch's temporary file is written, not yet renamed      (mid-rename)
    batch_committed     the batch is renamed into place; the cursor is not updated
    media_body          a chunk of an attachment's body arrived                     (mid-download)
    media_stored        an attachment's bytes are stored; the journal has no line yet
    results_written     a batch's attachment results file is written; journal not removed

and, after collection, in the cleaners and writers (tests/proof kills `midshard scrape` there):

    features_cached     a batch of image features is persisted under derived/features/
    decisions_written   a clean generation is persisted under derived/decisions/
    shard_written       a shard's tar is renamed into place; no sidecar, no _stats.json
    sidecar_written     its parquet sidecar too; the _stats.json marker not yet
    shard_completed     its _stats.json marker is written
    rejected_written    the run's rejected/ part is written; indexes, manifest, card, report not
    manifest_written    manifest.json is rewritten; card and report not yet
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "MIDSHARD_TEST_KILL_AT"
_hits: Counter[str] = Counter()


def kill_point(label: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, count = spec.rpartition(":")
    if wanted != label:
        return
    _hits[label] += 1
    if _hits[label] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
