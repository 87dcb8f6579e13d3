"""The fields of a sample's `.json` member, derived from `midshard.records.Sample`: their types drive
the JSON writer's checks, the parquet sidecar schema and the `features` the dataset card declares
to Hugging Face.

Rules (they keep every reader happy, see docs/writing.md): constant types; ints, floats and
strings only; no nulls except `nsfw_score` with the `none` scorer. Discord snowflakes are strings
(JavaScript loses precision above 2**53, and Discord's own API sends them as strings). Names follow
img2dataset where it has one (`caption`, `status`, `error_message`, `original_width`, ...).
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

from midshard.records import Sample
from midshard.schema import field_doc
from midshard.writers.split import split_of

SNOWFLAKES = ("message_id", "channel_id", "attachment_id")
NULLABLE = ("nsfw_score",)


def _from_sample(name: str, json_name: str | None = None) -> tuple[str, tuple[type, str]]:
    """A member field that is a `Sample` field (snowflakes as strings), with the record's doc."""
    kind = typing.get_type_hints(Sample)[name]
    if isinstance(kind, types.UnionType):  # `float | None`: nullable, see NULLABLE
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return json_name or name, (str if name in SNOWFLAKES else kind, field_doc(Sample, name))


# name -> (python type, meaning), in documentation order.
SAMPLE_FIELDS: dict[str, tuple[type, str]] = dict(
    [
        _from_sample("key"),
        _from_sample("prompt", "caption"),
        _from_sample("url"),
        ("status", (str, 'always "success" (img2dataset compatibility)')),
        ("error_message", (str, 'always "" (img2dataset compatibility)')),
        _from_sample("width"),
        _from_sample("height"),
        ("original_width", (int, "= width: images are never resized (grid tiles are lossless crops)")),
        ("original_height", (int, "= height")),
        _from_sample("sha256"),
        _from_sample("message_id"),
        _from_sample("channel_id"),
        _from_sample("attachment_id"),
        _from_sample("tile"),
        _from_sample("timestamp"),
        _from_sample("kind"),
        _from_sample("raw_prompt"),
        ("params", (str, 'parsed arguments as a JSON object string, e.g. {"aspect":"16:9","version":"6.1"}')),
        ("mj_version", (str, 'model asked for: "6.1", "niji 6", ...; "" when the prompt does not say')),
        _from_sample("format", "image_format"),
        _from_sample("file_size"),
        _from_sample("phash"),
        _from_sample("phash_impl"),
        _from_sample("nsfw_score"),
        _from_sample("nsfw_scorer"),
        ("split", (str, "train | validation")),
    ]
)

# Extra parquet sidecar columns: where the sample's image bytes are inside its tar.
SIDECAR_FIELDS: dict[str, tuple[type, str]] = {
    "tar_file": (str, "the shard holding the sample"),
    "image_member": (str, "name of the image member in tar_file"),
    "image_offset": (int, "byte offset of the image data in tar_file (length = file_size)"),
}

IMAGE_FORMATS = ("gif", "jpeg", "jpg", "png", "webp")


def mj_version(params: dict[str, str]) -> str:
    """The Midjourney model a prompt asked for: `niji <v>` for --niji, else the --version value."""
    if "niji" in params:
        return f"niji {params['niji']}".strip()
    return params.get("version", "")


def dumps(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, fixed separators, UTF-8, NaN refused."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def sample_record(sample: Sample, salt: str) -> dict[str, Any]:
    """The `.json` member of a sample; raises ValueError when a field would break the type rules."""
    if not sample.key.isdigit() or not sample.key.isascii():
        raise ValueError(f"sample key {sample.key!r} must be ASCII digits (dot-free, numeric)")
    if sample.format not in IMAGE_FORMATS:
        raise ValueError(f"sample {sample.key}: image format {sample.format!r} not in {IMAGE_FORMATS}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in sample.params.items()):
        raise ValueError(f"sample {sample.key}: params must map str to str")
    record: dict[str, Any] = {
        "key": sample.key,
        "caption": sample.prompt,
        "url": sample.url,
        "status": "success",
        "error_message": "",
        "width": sample.width,
        "height": sample.height,
        "original_width": sample.width,
        "original_height": sample.height,
        "sha256": sample.sha256,
        "message_id": str(sample.message_id),
        "channel_id": str(sample.channel_id),
        "attachment_id": str(sample.attachment_id),
        "tile": sample.tile,
        "timestamp": sample.timestamp,
        "kind": sample.kind,
        "raw_prompt": sample.raw_prompt,
        "params": dumps(sample.params).decode(),
        "mj_version": mj_version(sample.params),
        "image_format": sample.format,
        "file_size": sample.file_size,
        "phash": sample.phash,
        "phash_impl": sample.phash_impl,
        "nsfw_score": sample.nsfw_score,
        "nsfw_scorer": sample.nsfw_scorer,
        "split": split_of(sample.prompt, salt),
    }
    check_types(record, SAMPLE_FIELDS, sample.key)
    return record


def check_types(record: dict[str, Any], fields: dict[str, tuple[type, str]], key: str) -> None:
    for name, (kind, _) in fields.items():
        value = record[name]
        if value is None and name in NULLABLE:
            continue
        # bool is an int subclass: reject it explicitly so a column never mixes the two.
        if type(value) is not kind or (kind is float and not math.isfinite(value)):
            raise ValueError(f"sample {key}: field {name!r} = {value!r} is not a finite {kind.__name__}")
