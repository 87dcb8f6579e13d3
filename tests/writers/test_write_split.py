"""The split rule: documented normalisation, stable hash, 20:1 in expectation, prompt-disjoint."""

from __future__ import annotations

import hashlib
import random
import unicodedata

import pyarrow.parquet as pq
import pytest
from writers_fixtures import make_dataset, write

from midshard.writers.split import VALIDATION_MODULUS, normalise_prompt, split_of


def test_normalisation_folds_width_case_and_whitespace() -> None:
    assert normalise_prompt("  ＦＵＬＬ   Width\tCity\n") == "full width city"
    assert normalise_prompt("STRASSE") == normalise_prompt("straße")  # casefold, not lower()
    assert normalise_prompt("ﬁne ² ") == "fine 2"  # NFKC: ligature and superscript


def test_split_follows_the_documented_rule() -> None:
    """Re-derive the split independently from docs/writing.md's definition for random prompts."""
    rng = random.Random(7)
    salt = "some-salt"
    for _ in range(2000):
        prompt = "".join(rng.choice("abcXYZ  ＡＢ\tß,é") for _ in range(rng.randint(0, 30)))
        norm = " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())
        value = int.from_bytes(hashlib.sha256(f"{salt}\x00{norm}".encode()).digest()[:8], "big")
        expected = "validation" if value % 21 == 0 else "train"
        assert split_of(prompt, salt) == expected
        assert split_of(prompt.upper().replace(" ", "  "), salt) == split_of(prompt.upper(), salt)


def test_ratio_is_20_to_1_in_expectation() -> None:
    n = 42_000
    validation = sum(split_of(f"prompt number {i}", "midshard-v1") == "validation" for i in range(n))
    expected = n / VALIDATION_MODULUS
    assert abs(validation - expected) < 4 * (expected**0.5)  # within 4 sigma of n/21


def test_salt_changes_the_assignment() -> None:
    prompts = [f"p{i}" for i in range(2000)]
    a = [split_of(p, "a") for p in prompts]
    b = [split_of(p, "b") for p in prompts]
    assert a != b


def test_written_splits_are_prompt_disjoint(written, settings) -> None:
    base = written / "dataset"
    by_split: dict[str, set[str]] = {"train": set(), "validation": set()}
    for sidecar in sorted(base.glob("*.parquet")):
        table = pq.read_table(sidecar, columns=["caption", "split"]).to_pydict()
        assert set(table["split"]) == {sidecar.name.split("-")[0]}
        for caption, split in zip(table["caption"], table["split"], strict=True):
            by_split[split].add(normalise_prompt(caption))
            assert split_of(caption, settings.split_salt) == split
    assert by_split["train"] and by_split["validation"]
    assert not by_split["train"] & by_split["validation"]


@pytest.mark.slow
def test_an_item_never_moves_when_data_is_appended(tmp_path, settings) -> None:
    first = make_dataset(settings.split_salt, train_prompts=5, validation_prompts=2)
    write(tmp_path, first, settings)
    before = _splits(tmp_path)
    more = make_dataset(
        settings.split_salt, train_prompts=6, validation_prompts=2, first_message=1_300_000_000_000_000_000
    )
    # the new run repeats some old prompts: their new images must join the old prompts' split
    more.samples = [*more.samples, *_same_prompt_new_keys(first)]
    more.images.update(first.images)
    write(tmp_path, more, settings, kind="refresh")
    after = _splits(tmp_path)
    assert {k: after[k] for k in before} == before
    prompts: dict[str, set[str]] = {}
    for key, (split, caption) in after.items():
        prompts.setdefault(normalise_prompt(caption), set()).add(split)
        assert key
    assert all(len(splits) == 1 for splits in prompts.values())


def _same_prompt_new_keys(data):
    from dataclasses import replace

    from midshard.records import candidate_key

    return [replace(s, key=candidate_key(s.message_id, 5)) for s in data.samples[:6]]


def _splits(root) -> dict[str, tuple[str, str]]:
    result = {}
    for sidecar in sorted((root / "dataset").glob("*.parquet")):
        table = pq.read_table(sidecar, columns=["key", "split", "caption"]).to_pydict()
        for key, split, caption in zip(table["key"], table["split"], table["caption"], strict=True):
            result[key] = (split, caption)
    return result
