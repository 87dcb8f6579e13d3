"""Small inline JPEG thumbnails for the report (data URIs), chosen deterministically.

Images come from the dataset's own tars for kept samples, and from an optional callable for
dropped candidates. Dropped images may be hostile (bombs, truncated files): the header's pixel
count is checked before decoding, and any decode error just means "no thumbnail".
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator

from PIL import Image

SIZE = 160
QUALITY = 70


def pick_order(key: str) -> bytes:
    """A stable pseudo-random order over keys (spreads the picks across channels and months)."""
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


def thumbnail(data: bytes, max_pixels: int) -> str | None:
    """A `data:image/jpeg;base64,...` URI of at most SIZE×SIZE pixels, or None if not decodable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                return None
            image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG: decode at reduced scale
            image.thumbnail((SIZE, SIZE))
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=QUALITY)
    except Exception:  # hostile or broken input: PIL raises many exception types
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def first_thumbnails(
    candidates: Iterable[tuple[dict, Callable[[], bytes | None]]], limit: int, max_pixels: int
) -> Iterator[tuple[dict, str]]:
    """(info, uri) for the first `limit` candidates that yield a thumbnail; tries at most 4×limit."""
    found = 0
    for attempt, (info, read) in enumerate(candidates):
        if found >= limit or attempt >= 4 * limit:
            return
        data = read()
        uri = thumbnail(data, max_pixels) if data else None
        if uri:
            found += 1
            yield info, uri
