"""report.html: self-contained, structurally complete, and rendered by a real browser when present."""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from writers_fixtures import Synthetic

from midshard.settings import Settings

CHROMIUM = "/usr/bin/chromium"


class Page(HTMLParser):
    """Collects what the assertions need: tags, attributes, headings, text of thumbnail tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.tag_texts: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag if tag != "span" else f"span.{dict(attrs).get('class', '')}")

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "h2":
            self.headings.append(data.strip())
        if self._in and self._in[-1] == "span.tag drop":
            self.tag_texts.append(data.strip())

    def images(self) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == "img"]


def parse(root: Path) -> Page:
    page = Page()
    page.feed((root / "dataset" / "report.html").read_text())
    return page


def test_report_is_self_contained_and_complete(written: Path, data: Synthetic, settings: Settings) -> None:
    page = parse(written)
    assert page.headings == [
        "Funnel",
        "Split",
        "Images",
        "Kept samples",
        "Dropped candidates",
        "Runs",
        "Settings, models and versions",
    ]
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed"}
    for _, attrs in page.tags:
        for name in ("src", "href"):
            assert not attrs.get(name) or attrs[name].startswith("data:image/jpeg;base64,")
    assert sum(tag == "svg" for tag, _ in page.tags) == 7  # funnel, reasons, 3 histograms, versions, formats

    images = page.images()
    keys = {s.key for s in data.samples}
    kept = [img for img in images if img["alt"] in keys]
    assert len(kept) == settings.report_thumbnails
    dropped = [img for img in images if img["alt"] not in keys]
    shown = {r.key: r.decision for r in data.rejections}
    assert {shown[img["alt"]] for img in dropped} <= {"too_small", f"duplicate_of:{data.samples[0].key}"}
    assert len(dropped) == 3  # 2 too_small + 1 duplicate; corrupt bytes skipped, NSFW never shown
    assert not any("nsfw" in text for text in page.tag_texts)
    for img in images:
        thumb = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        assert thumb.format == "JPEG" and max(thumb.size) <= 160


def test_report_without_thumbnail_access(tmp_path: Path, data: Synthetic, settings: Settings) -> None:
    from midshard.store import Store
    from midshard.writers.dataset import RunInfo, write_dataset

    no_thumbs = settings.model_copy(update={"report_thumbnails": 0})
    write_dataset(
        Store(str(tmp_path)),
        data.samples,
        data.rejections,
        data.read_image,
        no_thumbs,
        RunInfo("import", "import-run"),
    )
    page = parse(tmp_path)
    assert not page.images()
    html = (tmp_path / "dataset/report.html").read_text()
    assert "No image access for dropped candidates" in html and "report_thumbnails = 0" in html


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium")
def test_report_renders_in_headless_chromium(written: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        f"--screenshot={shot}",
        (written / "dataset" / "report.html").as_uri(),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # our own process group: chromium and its helpers
            process.wait()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, bars, thumbnails: not a blank page
    bar_blue = sum(count for count, rgb in colours if rgb == (0x4C, 0x78, 0xA8))
    assert bar_blue > 1000  # the SVG charts were drawn
