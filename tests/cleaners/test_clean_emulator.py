"""The cleaners against the Discord emulator's ground truth (built from what the generator chose,
never by parsing), over HTTP as a client sees it: `explain` on every served message of a few seeds,
and the whole pipeline on a raw store filled with served messages and CDN files."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from midshard.cleaners.conditioning import CONDITIONED_KINDS
from midshard.cleaners.decisions import DecisionStore
from midshard.cleaners.explain import explain_lines
from midshard.cleaners.pipeline import Downloadable, clean
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.running import Emulator, running_emulator
from midshard.raw_store import AttachmentResult, RawStore
from midshard.settings import Settings
from midshard.store import Store

FIELDS = ("kind", "prompt", "params", "image_urls")
OUTPUT = ("id", "kind", "image_conditioned", "prompt", "params", "image_urls", "decision")
FAST = {"history_limit": 10_000, "global_limit": 10_000}  # no rate limiting in the way of the test


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # the emulator on 127.0.0.1
        return response.read()


def _history(emulator: Emulator, channel_id: int) -> list[dict]:
    """Every message of a channel, oldest first, paged with `before` as clients do."""
    messages: list[dict] = []
    before = ""
    while page := json.loads(_get(f"{emulator.api_base}/channels/{channel_id}/messages?limit=100{before}")):
        messages += page
        before = f"&before={page[-1]['id']}"
    return messages[::-1]


def _served(cfg: EmulatorConfig) -> list[tuple[dict, dict]]:
    """(message JSON as served, its truth line) for every message, in the truth's order."""
    with running_emulator(cfg) as emulator:
        served = {
            m["id"]: m
            for channel in emulator.channel_ids + emulator.thread_ids
            for m in _history(emulator, channel)
        }
        truth = emulator.truth()
    assert len(served) == len(truth)
    return [(served[line["id"]], line) for line in truth]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_explain_reproduces_the_truth(seed: int) -> None:
    served = _served(
        EmulatorConfig(seed=seed, channels=2, messages=300, threads=1, thread_messages=40, **FAST)
    )
    settings = Settings()
    # the served history at once: parents are found among the lines (conditioning is inherited)
    together = list(explain_lines([json.dumps(m) for m, _ in served], settings))
    assert len(together) == len(served)
    for answer, (message, truth) in zip(together, served, strict=True):
        assert answer == {f: truth[f if f != "decision" else "message_decision"] for f in OUTPUT}, message

    # one message at a time: the same reading; conditioning only from what the message shows
    kinds = set()
    for message, truth in served:
        (alone,) = explain_lines([json.dumps(message)], settings)
        assert {f: alone[f] for f in FIELDS} == {f: truth[f] for f in FIELDS}
        shows = truth["kind"] in CONDITIONED_KINDS or bool(truth["image_urls"])
        if truth["kind"] not in ("progress", "not_midjourney"):
            assert alone["image_conditioned"] == shows
        if alone["image_conditioned"] == truth["image_conditioned"]:
            assert alone["decision"] == truth["message_decision"]
        kinds.add(truth["kind"])
    assert {"grid", "upscale", "variation", "progress", "not_midjourney"} <= kinds


@pytest.mark.slow
def test_explain_cli_on_served_history(tmp_path: Path) -> None:
    served = _served(EmulatorConfig(seed=4, channels=1, messages=300, **FAST))
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m, _ in reversed(served)))
    code = "from midshard.flows.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "explain", str(path)], capture_output=True, check=True)
    answers = {a["id"]: a for a in map(json.loads, done.stdout.decode().splitlines())}
    assert len(answers) == len(served)
    for _, truth in served:
        answer = answers[truth["id"]]
        assert answer == {f: truth[f if f != "decision" else "message_decision"] for f in OUTPUT}


@pytest.mark.slow
def test_pipeline_reproduces_the_truth(tmp_path: Path) -> None:
    """Served pages into a raw store as the collectors write them; only downloadable files fetched."""
    settings = Settings(clean_workers=1)
    raw = RawStore(Store(str(tmp_path / "root")))
    downloadable = Downloadable(settings)
    with running_emulator(EmulatorConfig(seed=1, channels=1, messages=40, **FAST)) as emulator:
        (channel_id,) = emulator.channel_ids
        history = _history(emulator, channel_id)
        for start in range(0, len(history), 20):
            path = raw.write_message_batch(channel_id, history[start : start + 20])
            results = []
            for message in history[start : start + 20]:
                wanted = downloadable(message)
                for a in message["attachments"]:
                    ids = (int(a["id"]), int(message["id"]))
                    if int(a["id"]) in wanted:
                        results.append(AttachmentResult(*ids, sha256=raw.put_media(_get(a["url"]))))
                    else:
                        results.append(AttachmentResult(*ids, error="not_selected"))
            raw.write_attachment_results(channel_id, path, results)
        truth = emulator.truth()
    clean(raw, raw.store, settings)
    decisions = DecisionStore(raw.store)
    got = {
        key: decision
        for table in decisions.live(["decision"])
        for key, decision in zip(table["key"].to_pylist(), table["decision"].to_pylist(), strict=True)
    }
    assert got == {c["key"]: c["decision"] for line in truth for c in line["candidates"]}
    assert decisions.funnel()["keep"] >= 5
