"""The attachment CDN: signed links that expire, refresh-urls, tampering, proxy URLs, odd file names."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote, urlsplit

import pytest
from emulator_client import fetch, fetch_all

from midshard.emulator.cdn import GONE_TEXT
from midshard.emulator.singles import HOSTILE_NAMES

FAST = {"history_limit": 1000, "global_limit": 1000}


def attachments_of(emu, channel: int = 0, limit: int = 100) -> list[dict]:
    page = fetch(
        "GET", f"{emu.api_base}/channels/{emu.channel_ids[channel]}/messages", params={"limit": str(limit)}
    )
    return [a for message in page.json() for a in message["attachments"]]


def small_image(attachments: list[dict]) -> dict:
    """The smallest image attachment (cheap to generate)."""
    images = [a for a in attachments if a["content_type"].startswith("image/") and a["size"] > 0]
    return min(images, key=lambda a: a["size"])


@pytest.mark.slow
def test_links_are_signed_expire_and_refresh(emulator) -> None:
    with emulator(seed=11, channels=1, messages=60, link_ttl=1.0, **FAST) as emu:
        attachment = small_image(attachments_of(emu))
        url = attachment["url"]
        query = dict(part.split("=", 1) for part in urlsplit(url).query.split("&") if part)
        fresh, proxied = fetch_all([("GET", url, {}), ("GET", attachment["proxy_url"], {})])
        time.sleep(2.2)  # past the 1 s lifetime
        expired = fetch("GET", url)
        refresh = fetch("POST", f"{emu.api_base}/attachments/refresh-urls", json={"attachment_urls": [url]})
        renewed = fetch("GET", refresh.json()["refreshed_urls"][0]["refreshed"])
    assert url.endswith("&") and set(query) == {"ex", "is", "hm"} and len(query["hm"]) == 64
    assert int(query["ex"], 16) - int(query["is"], 16) in (1, 2)
    assert fresh.status == 200 and fresh.body == proxied.body
    assert len(fresh.body) == attachment["size"] == int(fresh.headers["Content-Length"])
    assert fresh.headers["Content-Type"] == attachment["content_type"]
    assert expired.status == 404 and expired.body.decode() == GONE_TEXT
    assert refresh.status == 200 and refresh.json()["refreshed_urls"][0]["original"] == url
    assert renewed.status == 200 and renewed.body == fresh.body


def test_tampered_unsigned_and_unknown_links_are_gone(emulator) -> None:
    with emulator(seed=11, channels=1, messages=60, **FAST) as emu:
        attachment = small_image(attachments_of(emu))
        url = attachment["url"]
        base, query = url.split("?")
        hm = query.split("hm=")[1][:64]
        flipped = url.replace(hm, ("0" if hm[0] != "0" else "1") + hm[1:])
        later = url.replace("ex=", "ex=f")  # a forged expiry
        replies = fetch_all(
            [
                ("GET", flipped, {}),
                ("GET", later, {}),
                ("GET", base, {}),
                (
                    "GET",
                    base.replace(str(attachment["id"]), str(int(attachment["id"]) + 1)) + "?" + query,
                    {},
                ),
            ]
        )
        too_many = fetch(
            "POST", f"{emu.api_base}/attachments/refresh-urls", json={"attachment_urls": [url] * 51}
        )
        stats = emu.stats()
    for reply in replies:
        assert reply.status == 404 and reply.body.decode() == GONE_TEXT
    assert too_many.status == 400 and too_many.json()["code"] == 50035
    assert stats["cdn"]["denied"] == 4


def test_hostile_file_names_are_encoded_and_served(emulator) -> None:
    """Path traversal, unicode, spaces and very long names survive the round trip through the URL."""
    with emulator(seed=3, channels=1, messages=1500, **FAST) as emu:
        url = f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages"
        hostile, before = [], None
        while len(hostile) < 3:
            params = {"limit": "100"} | ({"before": before} if before else {})
            page = fetch("GET", url, params=params).json()
            hostile += [a for m in page for a in m["attachments"] if a["filename"] in HOSTILE_NAMES]
            before = page[-1]["id"]
        served = fetch_all([("GET", a["url"], {}) for a in hostile[:3]])
    assert len(hostile) >= 3
    for attachment, reply in zip(hostile[:3], served, strict=True):
        path = urlsplit(attachment["url"]).path
        assert path.endswith("/" + quote(attachment["filename"], safe=""))
        assert unquote(path.rsplit("/", 1)[1]) == attachment["filename"]
        assert reply.status == 200 and len(reply.body) == attachment["size"]


def test_range_requests(emulator) -> None:
    with emulator(seed=11, channels=1, messages=60, **FAST) as emu:
        attachment = small_image(attachments_of(emu))
        whole, part, tail = fetch_all(
            [
                ("GET", attachment["url"], {}),
                ("GET", attachment["url"], {"headers": {"Range": "bytes=100-199"}}),
                ("GET", attachment["url"], {"headers": {"Range": "bytes=-50"}}),
            ]
        )
    assert part.status == 206 and part.body == whole.body[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.body)}"
    assert tail.status == 206 and tail.body == whole.body[-50:]
