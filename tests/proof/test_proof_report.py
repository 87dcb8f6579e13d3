"""Hostile text from Discord never becomes markup in `report.html`: prompts, captions and the
Midjourney version written after `--v` reach the page (captions, tooltips, chart labels) escaped, in
text and in attributes, and the dataset card holds none of them. The page is read back with an HTML
parser: every element and attribute in it must be one the template itself writes."""

from __future__ import annotations

import hashlib
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from midshard.records import Rejection, Sample, candidate_key
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.dataset import RunInfo, write_dataset

CHANNEL = 1200000000000000077
FIRST_ID = 1240000000000000000
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert("x")</script>',
    "' onmouseover='alert(2)' x='",
    "</div></body><iframe src=javascript:alert(3)>",
    '<svg onload=alert(4)><a href="javascript:alert(5)">link</a></svg>',
    "&lt;b&gt; already escaped &amp; {{ 7*7 }} {% raw %}",
]
# Everything report.html.j2 and writers/charts.py write themselves.
TEMPLATE_TAGS = {
    *("html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "b", "code", "span"),
    *("figure", "figcaption", "table", "tr", "th", "td", "img", "svg", "text", "rect", "line"),
}
TEMPLATE_ATTRIBUTES = {
    *("lang", "charset", "name", "content", "class", "src", "alt", "title", "viewbox", "width"),
    *("height", "role", "aria-label", "xmlns", "x", "y", "x1", "y1", "x2", "y2", "fill", "stroke"),
    *("text-anchor", "stroke-width", "stroke-dasharray"),
}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _dataset() -> tuple[list[Sample], list[Rejection], dict[str, bytes]]:
    images: dict[str, bytes] = {}
    samples, rejections = [], []
    for number, text in enumerate(HOSTILE):
        data = _png(number)
        sha = hashlib.sha256(data).hexdigest()
        images[sha] = data
        message_id = FIRST_ID + number * 4096
        samples.append(
            Sample(
                key=candidate_key(message_id),
                message_id=message_id,
                channel_id=CHANNEL,
                attachment_id=message_id - 1,
                tile=0,
                timestamp="2024-05-01T10:00:00.000Z",
                url=f"https://cdn.discordapp.com/attachments/{CHANNEL}/{message_id - 1}/x.png",
                kind="upscale",
                prompt=text,
                raw_prompt=f"{text} --v {text}",
                params={"version": text},
                width=64,
                height=48,
                format="png",
                file_size=len(data),
                sha256=sha,
                phash=f"{number:016x}",
                phash_impl="imagehash.phash(hash_size=8)",
                nsfw_score=0.01,
                nsfw_scorer="open_nsfw",
            )
        )
        dropped = _png(100 + number)
        dropped_sha = hashlib.sha256(dropped).hexdigest()
        images[dropped_sha] = dropped
        rejections.append(
            Rejection(
                key=candidate_key(message_id + 1),
                message_id=message_id + 1,
                channel_id=CHANNEL,
                attachment_id=message_id,
                tile=0,
                timestamp="2024-05-01T10:00:00.000Z",
                kind="upscale",
                prompt=text,
                decision="too_small",
                sha256=dropped_sha,
            )
        )
    return samples, rejections, images


def test_hostile_prompts_are_text_in_the_report_and_absent_from_the_card(tmp_path: Path) -> None:
    samples, rejections, images = _dataset()
    settings = Settings(root=str(tmp_path), report_thumbnails=2 * len(HOSTILE), split_salt="report-proof")
    write_dataset(
        Store(str(tmp_path)),
        sorted(samples, key=lambda s: s.key),
        sorted(rejections, key=lambda r: r.key),
        lambda sample: images[sample.sha256],
        settings,
        RunInfo("scrape", "hostile-report", funnel={"messages": len(HOSTILE)}, sources=[str(CHANNEL)]),
        read_rejected_image=lambda rejection: images.get(rejection.sha256),
    )

    html = (tmp_path / "dataset" / "report.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    page.close()
    assert {tag for tag, _ in page.elements} <= TEMPLATE_TAGS
    attributes = {name for _, attrs in page.elements for name in attrs}
    assert attributes <= TEMPLATE_ATTRIBUTES, attributes - TEMPLATE_ATTRIBUTES
    assert all(attrs["src"].startswith("data:image/") for tag, attrs in page.elements if tag == "img")
    for text in HOSTILE:  # shown as written: as a caption, in its tooltip, as a version label
        assert text not in html  # never raw in the markup
        assert text in page.text
        assert sum(attrs.get("title") == text for _, attrs in page.elements) == 2  # kept + dropped
    card = (tmp_path / "dataset" / "README.md").read_text(encoding="utf-8")
    assert not any(marker in card for marker in ("<img", "<script", "<svg", "<iframe", "onerror"))
