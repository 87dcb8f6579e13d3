"""manifest.json and the dataset card agree with what is on disk."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml
from writers_fixtures import FUNNEL, Synthetic

from midshard.settings import Settings
from midshard.writers.schema import SAMPLE_FIELDS
from midshard.writers.split import normalise_prompt, split_of


def test_manifest_counts_versions_and_runs(written: Path, data: Synthetic, settings: Settings) -> None:
    manifest = json.loads((written / "dataset/manifest.json").read_text())
    splits = Counter(split_of(s.prompt, settings.split_salt) for s in data.samples)
    prompts = {
        split: len(
            {
                normalise_prompt(s.prompt)
                for s in data.samples
                if split_of(s.prompt, settings.split_salt) == split
            }
        )
        for split in ("train", "validation")
    }
    counts = manifest["counts"]
    assert counts["samples"] == {**splits, "total": len(data.samples)}
    assert counts["prompts"] == {**prompts, "total": sum(prompts.values())}
    assert counts["train_to_validation"] == f"{splits['train'] / splits['validation']:.2f}:1"
    reasons = Counter(r.decision.split(":")[0] for r in data.rejections)
    assert counts["rejected"] == {"total": len(data.rejections), "by_reason": dict(reasons)}
    assert counts["image_formats"] == dict(Counter(s.format for s in data.samples))
    assert counts["shards"] == {s: len(list((written / "dataset").glob(f"{s}-*.tar"))) for s in splits}
    assert manifest["settings_fingerprint"] == settings.output_fingerprint()
    assert manifest["settings"]["nsfw_threshold"] == settings.nsfw_threshold
    assert manifest["split"]["salt"] == settings.split_salt and manifest["split"]["modulus"] == 21
    assert {"midshard", "webdataset", "pillow", "imagehash", "onnxruntime", "python"} <= set(
        manifest["versions"]
    )
    assert manifest["models"]["nsfw"] == "open_nsfw test" and manifest["models"]["nsfw_scorer"] == [
        "open_nsfw"
    ]
    (run,) = manifest["runs"]
    assert run["kind"] == "scrape" and [(f["stage"], f["count"]) for f in run["funnel"]] == list(
        FUNNEL.items()
    )
    assert run["samples_written"] == dict(splits) and run["rejections_written"] == len(data.rejections)


def test_card_declares_configs_features_and_terms(written: Path, data: Synthetic) -> None:
    text = (written / "dataset/README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["configs"] == [
        {
            "config_name": "default",
            "default": True,
            "data_files": [
                {"split": "train", "path": "train-*.tar"},
                {"split": "validation", "path": "validation-*.tar"},
            ],
        }
    ]
    features = {f["name"]: f for f in meta["dataset_info"]["features"]}
    assert [f["name"] for f in features["json"]["struct"]] == list(SAMPLE_FIELDS)
    image_columns = {name for name, f in features.items() if f.get("dtype") == "image"}
    assert image_columns == {s.format for s in data.samples}
    assert meta["license"] == "other"
    body = text.split("---\n", 2)[2]
    assert "Terms and licence" in body and "Midjourney" in body and "responsible" in body
    for split in ("train", "validation"):
        count = sum(split_of(s.prompt, "midshard-v1") == split for s in data.samples)
        assert f"| {split} | {count} |" in body
    assert "train-{000000.." in body
