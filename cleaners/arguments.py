"""Split an echoed Midjourney prompt into the clean prompt, its parameters and its image URLs.

The rules are docs/parsing-rules.md section 5. The clean prompt is the text a text-to-image model
was actually asked for: no leading image prompts or third-party proxy markers, no `--parameters`
(also written with an em or en dash, any case), no `::` multi-prompt weights, no control
characters, bidi controls or zero-width characters (docs/parsing-rules.md section 5 says which
joiners stay). Parameters are kept as metadata under canonical names, values as written.

The split is a fixpoint, so cleaning a clean prompt changes nothing: removing a weight or a control
character can expose a new leading marker or a new `--` introducer (`a::--v 5`), so the split is
repeated on its own output until nothing changes (two passes for real prompts).
Every pattern here is linear in the input; 100 kB prompts are fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# C0 and C1 control characters (NUL, tab, newline, DEL, ...): replaced by spaces before anything else.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Invisible characters that change how text is shown, never what it says, removed: the bidi
# controls (ALM, LRM, RLM, the embeddings, overrides and isolates), zero-width space, word joiner,
# the invisible math operators and the BOM / zero-width no-break space.
_INVISIBLE = "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
# Zero-width non-joiner and joiner change what text is only between two characters that can join:
# emoji sequences (woman + ZWJ + laptop is one emoji), Persian half-spaces, Indic conjuncts, all
# non-ASCII. Anywhere else (in an ASCII word, next to a space, another joiner or an invisible
# character, at an end) they only hide, and are removed too. One pass; what stays has neighbours
# that stay, so a second pass changes nothing.
_JOINABLE = f"[^\\x00-\\x7f\\s\u200c\u200d{_INVISIBLE}]"
_HIDDEN = re.compile(f"[{_INVISIBLE}]|(?<!{_JOINABLE})[\u200c\u200d]|[\u200c\u200d](?!{_JOINABLE})")
_SPACES = re.compile(r"\s+")
# A parameter introducer: `--`, em dash or en dash, at the start or after whitespace, then a letter.
INTRODUCER = re.compile(r"(?:(?<=\s)|^)(?:--|—|–)(?=[A-Za-z])")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# A multi-prompt weight: `::` and an optional signed number (`::2`, `::-.5`, `::`).
_WEIGHT = re.compile(rf"::(?:{_NUMBER})?")
# One URL token, `<…>` brackets optional (clean forms lose the `>`), `::weight` optional.
_URL_TOKEN = rf"<?(?P<url>https?://[^\s<>]+?)>?(?:::{_NUMBER})?>?"
# A leading token: a third-party proxy marker (glued or not), or an image-prompt URL.
_LEADING = re.compile(rf"\s*(?:(?P<marker>\[\d+\]|<#[0-9A-Za-z]+#>|<<<[^<>\s]+>>>)|{_URL_TOKEN}(?=\s|<|$))")
_URL_VALUE = re.compile(rf"{_URL_TOKEN}$")

# Alias -> canonical name (Midjourney's parameter list, docs.midjourney.com); canonical names map
# to themselves.
ALIASES: dict[str, str] = {
    "ar": "aspect",
    "v": "version",
    "s": "stylize",
    "q": "quality",
    "c": "chaos",
    "w": "weird",
    "h": "height",
    "r": "repeat",
    "p": "personalize",
}
CANONICAL = frozenset(
    {
        *ALIASES.values(),
        *("niji", "style", "raw", "seed", "sameseed", "stop", "no", "tile", "iw", "sref", "sw", "sv"),
        *("cref", "cw", "oref", "ow", "exp", "draft", "video", "motion", "loop", "end", "bs", "fast"),
        *("relax", "turbo", "hd", "test", "testp", "creative", "beta", "uplight", "upbeta", "upanime"),
        *("zoom", "wallpaper", "sl", "ml", "ll", "sp", "mp", "lp", "vibe", "vibefast"),
    }
)
# Parameters whose values may hold reference-image URLs (collected into `image_urls`).
URL_PARAMS = ("sref", "cref", "oref", "end")
# `--w` meant width before version 4.
_WIDTH_ERA = frozenset({"1", "2", "3"})


@dataclass(frozen=True, slots=True)
class Arguments:
    """The three parts of an echoed prompt."""

    prompt: str
    params: dict[str, str] = field(default_factory=dict)
    image_urls: tuple[str, ...] = ()


def canonical_name(name: str) -> str:
    """Lower-cased canonical name; unknown (custom `/prefer option`) names are kept as written."""
    lowered = name.lower()
    return ALIASES.get(lowered, lowered)


def split_prompt(raw: str) -> Arguments:
    """Clean prompt, parameters and image URLs of the text between the `**` markers."""
    text = _CONTROL.sub(" ", raw)
    if not text.isascii():  # an O(1) test: most prompts are ASCII
        text = _HIDDEN.sub("", text)
    urls: list[str] = []
    pairs: list[tuple[str, str]] = []  # (name as written, value) in order
    while True:
        prompt, leading, param_text = _split_once(text)
        urls.extend(leading)
        pairs.extend(_parse_params(param_text))
        if prompt == text:
            break
        text = prompt
    params = _merge(pairs)
    for name in URL_PARAMS:
        urls.extend(_urls_in_value(params.get(name, "")))
    return Arguments(prompt, params, tuple(urls))


def _split_once(text: str) -> tuple[str, list[str], str]:
    """(tidied prompt text, leading image URLs, parameter text) of one pass."""
    urls: list[str] = []
    pos = 0
    while match := _LEADING.match(text, pos):
        if match["url"]:
            urls.append(match["url"])
        pos = match.end()
    rest = text[pos:]
    introducer = INTRODUCER.search(rest)
    cut = len(rest) if introducer is None else introducer.start()
    body, param_text = rest[:cut], rest[cut:]
    return _tidy(_WEIGHT.sub(" ", body)), urls, param_text


def _tidy(text: str) -> str:
    """Collapse whitespace, strip it, and drop trailing commas (`cinematic light, --ar 9:16`)."""
    return _SPACES.sub(" ", text).strip(" ").rstrip(" ,")


def _parse_params(text: str) -> list[tuple[str, str]]:
    """`--name value words…` segments; a value runs up to the next introducer (greedy)."""
    introducers = list(INTRODUCER.finditer(text))
    starts = [m.end() for m in introducers]
    ends = [m.start() for m in introducers[1:]] + [len(text)] * bool(introducers)
    pairs = []
    for start, end in zip(starts, ends, strict=True):
        segment = text[start:end]
        name = _NAME.match(segment)
        assert name is not None  # the introducer pattern guarantees a leading letter
        pairs.append((name.group(), _SPACES.sub(" ", segment[name.end() :]).strip()))
    return pairs


def _merge(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Canonical names; a repeated name joins its non-empty values with ", "."""
    version = next((value for name, value in pairs if canonical_name(name) == "version"), "")
    old_width = version.split(" ")[0].removesuffix(".0") in _WIDTH_ERA
    params: dict[str, str] = {}
    for name, value in pairs:
        key = canonical_name(name)
        if key == "weird" and name.lower() == "w" and old_width:
            key = "width"
        previous = params.get(key)
        params[key] = value if not previous else (f"{previous}, {value}" if value else previous)
    return params


def _urls_in_value(value: str) -> list[str]:
    urls = []
    for token in value.replace(",", " ").split():
        match = _URL_VALUE.match(token)
        if match:
            urls.append(match["url"])
    return urls
