"""The step registry is the one list: the docs' step tables follow it, every reason code belongs to
a step, the funnel follows its order, and a new filter is one `Step` that plugs into the chain
with its own counters."""

from __future__ import annotations

import re
from pathlib import Path

from mj_messages import api_message, attachment

from midshard.cleaners.parse import parse_message
from midshard.cleaners.registry import FUNNEL_ORDER, STEPS, build
from midshard.cleaners.steps import Candidate, Needs, Pending, Pipeline, Step, candidates_of
from midshard.records import KEEP, Decision, Reason, drop
from midshard.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "parsing-rules.md"
GUIDE = DOCS.parent / "cleaning.md"
NEEDS = {
    "message": Needs.MESSAGE,
    "stored": Needs.STORED,
    "features": Needs.FEATURES,
    "kept": Needs.KEPT_INDEX,
}


def _table() -> list[list[str]]:
    section = DOCS.read_text(encoding="utf-8").split("## 2. Steps", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_docs_step_table_is_the_registry() -> None:
    rows = _table()
    assert [row[0].strip("`") for row in rows] == [step.name for step in STEPS]
    for row, step in zip(rows, STEPS, strict=True):
        documented = set(re.findall(r"`([a-z_]+)(?::[^`]*)?`", row[2]))
        assert documented == {reason.value for reason in step.reasons}, step.name
        needs = Needs(0)
        for word in re.findall(r"[a-z]+", row[3].split("(")[0]):
            needs |= NEEDS[word]
        assert needs == step.needs, step.name


def test_the_cleaning_guide_explains_every_step_in_registry_order() -> None:
    section = GUIDE.read_text(encoding="utf-8").split("## 1. The steps", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = [name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split(" | ")[0])]
    assert names == [step.name for step in STEPS]


def test_every_reason_has_a_step_and_the_funnel_follows_the_registry() -> None:
    produced = [reason.value for step in STEPS for reason in step.reasons]
    assert set(produced) == {reason.value for reason in Reason}
    assert (*dict.fromkeys(produced), "keep") == FUNNEL_ORDER
    assert len({step.name for step in STEPS}) == len(STEPS)


class ShortPrompt(Step):
    """An example filter a user might add: captions of fewer than three words are dropped."""

    name, reasons = "short_prompt", (Reason.EMPTY_PROMPT,)

    def __call__(self, c: Candidate) -> Decision:
        return KEEP if len(c.message.prompt.split()) >= 3 else drop(Reason.EMPTY_PROMPT, "short")


def test_a_new_filter_is_one_step_with_its_own_counters() -> None:
    settings = Settings()
    steps = build(settings)
    at = next(n for n, step in enumerate(steps) if step.name == "has_prompt") + 1
    pipeline = Pipeline([*steps[:at], ShortPrompt(settings), *steps[at:]])
    messages = [
        api_message(1, "**a red fox in snow** - <@1> (fast)", [attachment(11)]),
        api_message(2, "**fox** - Image #1 <@1>", [attachment(12)]),
        api_message(3, "**a lighthouse at dusk** - Image #2 <@1>", [attachment(13)]),
    ]
    pending = [
        Pending(c) for m in messages for c in candidates_of(parse_message(m, settings.bot_ids), settings)
    ]
    pipeline.advance(pending, Needs.MESSAGE)
    assert [str(p.decision) for p in pending] == ["grid", "empty_prompt:short", "None"]
    assert (pipeline.stats["short_prompt"].seen, pipeline.stats["short_prompt"].dropped) == (3, 1)
    assert (pipeline.stats["grid_policy"].seen, pipeline.stats["grid_policy"].dropped) == (2, 1)
