"""The traffic generator and its ground truth: deterministic, realistic, consistent with what is served."""

from __future__ import annotations

import inspect
import json
import math
import re
from collections import Counter

import pytest

from midshard.emulator import EmulatorConfig, generate_truth, snowflakes
from midshard.emulator.cdn import Signer
from midshard.emulator.eras import FEATURES, default_version, has
from midshard.emulator.messages import Renderer
from midshard.emulator.traffic import Traffic
from midshard.emulator.world import MIDJOURNEY_BOT_ID
from midshard.flows.cli import demo
from midshard.records import candidate_key
from midshard.settings import Settings
from midshard.writers.split import VALIDATION_MODULUS, split_of

NOW = 1_760_000_000.0
TRUTH_FIELDS = ("id", "channel_id", "kind", "image_conditioned", "prompt", "params", "image_urls")
TRUTH_FIELDS += ("decision", "message_decision", "candidates")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def served(config: EmulatorConfig) -> list[dict]:
    """Every message as the API renders it (signed at a fixed time), in truth order."""
    traffic = Traffic(config)
    renderer = Renderer(traffic.world, traffic, Signer(config.seed, config.link_ttl), "http://127.0.0.1:1")
    return [
        renderer.message(traffic.message(stream, index), NOW)
        for stream in traffic.world.streams
        for index in range(stream.base_count)
    ]


@pytest.fixture(scope="module")
def big() -> tuple[EmulatorConfig, list[dict], list[dict]]:
    config = EmulatorConfig(seed=21, channels=2, messages=1500, threads=1, thread_messages=100)
    return config, served(config), generate_truth(config)


def test_same_seed_same_messages_and_truth_other_seed_differs() -> None:
    config = EmulatorConfig(seed=5, channels=2, messages=150)
    first, again = served(config), served(config)
    assert json.dumps(first) == json.dumps(again)
    assert generate_truth(config) == generate_truth(config)
    other = served(config.model_copy(update={"seed": 6}))
    assert [m["content"] for m in other] != [m["content"] for m in first]


@pytest.mark.slow
def test_truth_lines_match_the_served_messages(big) -> None:
    _config, messages, truth = big
    assert len(truth) == len(messages) == 2 * 1500 + 2 * 100
    for message, line in zip(messages, truth, strict=True):
        assert line["id"] == message["id"] and line["channel_id"] == message["channel_id"]
        count = max(1, len(message["attachments"]))
        assert [c["key"] for c in line["candidates"]] == [
            candidate_key(int(message["id"]), k) for k in range(count)
        ]
        assert list(line) == list(TRUTH_FIELDS)


@pytest.mark.slow
def test_ids_are_unique_time_ordered_snowflakes(big) -> None:
    _config, messages, _truth = big
    ids = [int(m["id"]) for m in messages]
    attachment_ids = [int(a["id"]) for m in messages for a in m["attachments"]]
    assert len(set(ids)) == len(ids) and len(set(attachment_ids)) == len(attachment_ids)
    assert not set(ids) & set(attachment_ids)
    by_channel: dict[str, list[int]] = {}
    for message in messages:
        by_channel.setdefault(message["channel_id"], []).append(int(message["id"]))
        ms = snowflakes.unix_ms(int(message["id"]))
        assert message["timestamp"] == snowflakes.iso(ms)
        for attachment in message["attachments"]:
            assert 0 < ms - snowflakes.unix_ms(int(attachment["id"])) < 1000  # uploaded just before
    assert len(by_channel) == 4 and all(v == sorted(v) for v in by_channel.values())


@pytest.mark.slow
def test_eras_are_consistent_with_dates(big) -> None:
    _config, messages, truth = big
    seen: Counter[str] = Counter()
    checks = {
        "Image #": "v5",
        "Upscaled (Subtle)": "upscale_subtle",
        "Variations (Strong)": "vary_strong",
        "Zoom Out by": "zoom",
        "Pan ": "pan",
        "-# Create, explore": "footer",
        "--oref": "oref",
        "--motion": "video",
        "Open on website": "open_on_website",
    }
    for message, line in zip(messages, truth, strict=True):
        if int(message["author"]["id"]) != MIDJOURNEY_BOT_ID:
            continue
        ms, content = snowflakes.unix_ms(int(message["id"])), message["content"]
        version = line["params"].get("version", "").split(" ")[0].removesuffix(".0")
        if version:
            assert float(version) <= float(default_version(ms)), (version, message["timestamp"])
        for marker, feature in checks.items():
            if marker in content:
                seen[marker] += 1
                assert has(feature, ms), (marker, message["timestamp"])
        if "metered" in content:
            assert ms < FEATURES["metered_end"]
        if "--sref" in content and "https://" in content.split("--sref")[1].split("--")[0]:
            assert has("sref_url", ms)
    assert set(seen) == set(checks)  # every marker occurs, each only when it existed


@pytest.mark.slow
def test_file_names_and_job_ids(big) -> None:
    _config, messages, _truth = big
    checked = 0
    for message in messages:
        if int(message["author"]["id"]) != MIDJOURNEY_BOT_ID or not message["attachments"]:
            continue
        name = message["attachments"][0]["filename"]
        match = re.fullmatch(rf"(.+)_({UUID})\.(png|webp)", name)
        if match is None:
            continue  # previews (<uuid>_grid_0.webp), hostile names, broken files
        stem, job = match.group(1), match.group(2)
        custom_ids = [b.get("custom_id", "") for row in message["components"] for b in row["components"]]
        job_ids = {
            c.split("::")[4] if c.count("::") >= 4 else "" for c in custom_ids if c.startswith("MJ::JOB::")
        }
        if job_ids - {""}:
            assert job in job_ids
            checked += 1
        assert len(stem) <= 63
    assert checked > 500


@pytest.mark.slow
def test_default_mixture_covers_every_kind_and_reason() -> None:
    config = EmulatorConfig(seed=1, channels=2, messages=1500)
    truth = generate_truth(config)
    kinds = Counter(line["kind"] for line in truth)
    reasons = Counter(line["decision"].split(":")[0] for line in truth)
    expected_kinds = {"grid", "upscale", "variation", "remix", "zoom", "pan", "blend", "video", "describe"}
    assert expected_kinds | {"progress", "other", "not_midjourney"} <= set(kinds)
    expected_reasons = {"keep", "grid", "image_conditioned", "duplicate_of", "not_midjourney", "progress"}
    expected_reasons |= {"not_a_generation", "not_an_image", "corrupt_image", "truncated_image", "empty_file"}
    expected_reasons |= {"decompression_bomb", "no_attachment", "too_small"}
    assert expected_reasons <= set(reasons)
    assert 0.25 <= reasons["keep"] / len(truth) <= 0.40
    assert any(line["message_decision"] == "too_small:message_only" for line in truth)

    # the `Animating...` placeholder announces an image-to-video job: image-conditioned
    traffic = Traffic(config)
    messages = [
        traffic.message(stream, i) for stream in traffic.world.streams for i in range(stream.base_count)
    ]
    animating = [
        line for message, line in zip(messages, truth, strict=True) if message.content == "Animating..."
    ]
    assert animating
    for line in animating:
        assert (line["kind"], line["image_conditioned"], line["decision"]) == (
            "video",
            True,
            "image_conditioned",
        )


def _kept_prompts(truth: list[dict]) -> Counter[str]:
    """Kept images per clean prompt."""
    return Counter(line["prompt"] for line in truth for c in line["candidates"] if c["decision"] == "keep")


@pytest.mark.slow
def test_prompts_repeat_as_in_real_channels(big) -> None:
    """Almost every /imagine prompt is new; reruns (reroll button, pasted again), variations and
    upscales repeat a job's prompt, so a prompt has about as many kept images as in JourneyDB
    (2.7 per prompt), and near-duplicates are upscales of an image already posted."""
    _config, messages, truth = big
    fresh = [
        line["prompt"]
        for message, line in zip(messages, truth, strict=True)
        if line["kind"] == "grid" and not line["image_conditioned"] and "message_reference" not in message
    ]
    assert len(set(fresh)) >= 0.85 * len(fresh)  # pasted reruns and a few short prompts recur
    rerolls = [
        (message, line)
        for message, line in zip(messages, truth, strict=True)
        if line["kind"] == "grid" and "message_reference" in message
    ]
    by_id = {message["id"]: line for message, line in zip(messages, truth, strict=True)}
    assert rerolls and all(
        by_id[m["message_reference"]["message_id"]]["prompt"] == line["prompt"] for m, line in rerolls
    )
    kept = _kept_prompts(truth)
    assert 1.5 <= sum(kept.values()) / len(kept) <= 3.0
    screened = Counter(c["decision"].split(":")[0] for line in truth for c in line["candidates"])
    assert 0.08 <= screened["duplicate_of"] / (screened["duplicate_of"] + screened["keep"]) <= 0.2


def test_the_demo_splits_20_to_1_within_its_noise() -> None:
    """`midshard demo`'s traffic: validation images within two standard deviations of 1/21 of the
    kept ones. Prompts fall into validation independently (p = 1/21) with all their images, so the
    variance of the validation count is p(1-p) times the sum of squared images per prompt."""
    defaults = {
        name: inspect.signature(demo).parameters[name].default for name in ("seed", "channels", "messages")
    }
    kept = _kept_prompts(generate_truth(EmulatorConfig(**defaults)))
    salt = Settings().split_salt
    validation = sum(n for prompt, n in kept.items() if split_of(prompt, salt) == "validation")
    total, p = sum(kept.values()), 1 / VALIDATION_MODULUS
    sigma = math.sqrt(p * (1 - p) * sum(n * n for n in kept.values()))
    assert 0 < validation < total
    assert abs(validation - p * total) <= 2 * sigma, (validation, total, sigma)


@pytest.mark.slow
def test_prompts_look_real(big) -> None:
    _config, _messages, truth = big
    prompts = [line["prompt"] for line in truth if line["prompt"]]
    params = Counter(name for line in truth for name in line["params"])
    assert len(set(prompts)) > len(prompts) / 4  # varied (crops repeat their grid's prompt)
    assert any(re.search(r"[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]", p) for p in prompts)  # CJK
    assert {"aspect", "version", "stylize", "no", "chaos"} <= set(params)
    assert any(line["image_urls"] for line in truth if line["kind"] == "grid")  # image prompts
