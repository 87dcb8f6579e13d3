"""A plug-in NSFW scorer (loaded by import path in the worker processes) that kills its worker
process on 77×77 images: how a decoder segfault looks to the pool."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


class CrashingScorer:
    id = "crash-test"

    def prepare(self, image: Image.Image) -> np.ndarray:
        if image.size == (77, 77):
            os._exit(3)
        return np.empty(0, dtype=np.float32)

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.full(len(batch), np.nan, dtype=np.float32)
