"""The fields of a sample's `.json` member, in one place: their types drive the JSON writer's
checks, the parquet sidecar schema and the `features` the dataset card declares to Hugging Face.

Rules (they keep every reader happy, see docs/writing.md): constant types, no nulls, ints/floats/
strings only. Discord snowflakes are strings (JavaScript loses precision above 2**53, and Discord's
own API sends them as strings). Names follow img2dataset where it has one.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from midshard.records import Sample
from midshard.writers.split import split_of

# name -> (python type, meaning), in documentation order.
SAMPLE_FIELDS: dict[str, tuple[type, str]] = {
    # img2dataset-compatible names
    "key": (str, "member basename: 20-digit message id + 2-digit attachment index + tile digit"),
    "caption": (str, "clean prompt (Midjourney arguments and :: weights removed) = the .txt member"),
    "url": (str, "attachment URL without the expiring ex/is/hm signature (not a durable download link)"),
    "status": (str, 'always "success" (img2dataset compatibility)'),
    "error_message": (str, 'always "" (img2dataset compatibility)'),
    "width": (int, "pixels, from the image header"),
    "height": (int, "pixels, from the image header"),
    "original_width": (int, "= width: images are never resized (grid tiles are lossless crops)"),
    "original_height": (int, "= height"),
    "sha256": (str, "hex sha256 of the image member's bytes"),
    # provenance
    "message_id": (str, "Discord message snowflake (a string: JavaScript loses precision above 2**53)"),
    "channel_id": (str, "Discord channel snowflake"),
    "attachment_id": (str, "Discord attachment snowflake"),
    "tile": (int, "0 = the whole image, 1-4 = a tile of a split 2x2 grid"),
    "timestamp": (str, "ISO-8601 UTC time of the message"),
    "kind": (str, "grid, upscale, ... (docs/parsing-rules.md)"),
    # prompt and parameters
    "raw_prompt": (str, "the prompt as posted, Midjourney arguments included"),
    "params": (str, 'parsed arguments as a JSON object string, e.g. {"aspect":"16:9","version":"6.1"}'),
    "mj_version": (str, 'model asked for: "6.1", "niji 6", ...; "" when the prompt does not say'),
    # image
    "image_format": (str, "png | webp | jpeg | gif = the extension of the image member"),
    "file_size": (int, "bytes of the image member"),
    "phash": (str, "64-bit perceptual hash, 16 hex digits"),
    "phash_impl": (str, "how phash was computed"),
    "nsfw_score": (float, "NSFW probability 0-1 (threshold and model in manifest.json)"),
    "nsfw_scorer": (str, "the NSFW scorer that produced nsfw_score"),
    "split": (str, "train | validation"),
}

# Extra parquet sidecar columns: where the sample's image bytes are inside its tar.
SIDECAR_FIELDS: dict[str, tuple[type, str]] = {
    "tar_file": (str, "the shard holding the sample"),
    "image_member": (str, "name of the image member in tar_file"),
    "image_offset": (int, "byte offset of the image data in tar_file (length = file_size)"),
}

IMAGE_FORMATS = ("gif", "jpeg", "jpg", "png", "webp")
SIGNATURE_PARAMS = {"ex", "is", "hm"}


def mj_version(params: dict[str, str]) -> str:
    """The Midjourney model a prompt asked for: `niji <v>` for --niji, else the --version value."""
    if "niji" in params:
        return f"niji {params['niji']}".strip()
    return params.get("version", "")


def unsigned_url(url: str) -> str:
    """The URL without Discord's expiring signature (`ex`, `is`, `hm`): never store a signed link."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SIGNATURE_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(query)))


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
        "url": unsigned_url(sample.url),
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
        "nsfw_score": float(sample.nsfw_score) if isinstance(sample.nsfw_score, int | float) else None,
        "nsfw_scorer": sample.nsfw_scorer,
        "split": split_of(sample.prompt, salt),
    }
    check_types(record, SAMPLE_FIELDS, sample.key)
    return record


def check_types(record: dict[str, Any], fields: dict[str, tuple[type, str]], key: str) -> None:
    for name, (kind, _) in fields.items():
        value = record[name]
        # bool is an int subclass: reject it explicitly so a column never mixes the two.
        if type(value) is not kind or (kind is float and not math.isfinite(value)):
            raise ValueError(f"sample {key}: field {name!r} = {value!r} is not a finite {kind.__name__}")
