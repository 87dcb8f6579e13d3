"""Prompts as people typed them and Midjourney echoed them (parameters: docs.midjourney.com).

A `Prompt` keeps its parts apart — leading image prompts, the user's words, the parameters — so the
emulator knows what midshard must read from it without parsing: the clean prompt is the normalised
words, the parameters are the list it generated. The words come from templates over the vocabulary
(vocabulary.py) with the quirks seen in real channels; the templates combine enough parts that a
channel's prompts are almost all distinct, as real ones are (reruns, variations and upscales of a
job repeat its prompt; a few short prompts like "a cute cat" recur on their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from random import Random

from midshard.emulator import eras
from midshard.emulator.vocabulary import (
    ACTIONS,
    ARTISTS,
    CAMERA,
    CJK_QUESTIONS,
    CJK_SCENES,
    CJK_SUBJECTS,
    CLAUSES,
    CONTROL_CHARS,
    CUSTOM_PARAMS,
    EMOJI,
    HANDWRITTEN,
    LIGHTING,
    MOODS,
    NO_ITEMS,
    PLACES,
    PROXY_MARKERS,
    STYLES,
    SUBJECTS,
)

# -- the parsing contract, for the emulator's own words (docs/parsing-rules.md §5) ------------------

ALIASES = {
    "ar": "aspect",
    "aspect": "aspect",
    "v": "version",
    "version": "version",
    "s": "stylize",
    "stylize": "stylize",
    "q": "quality",
    "quality": "quality",
    "c": "chaos",
    "chaos": "chaos",
    "w": "weird",
    "weird": "weird",
    "h": "height",
    "r": "repeat",
    "repeat": "repeat",
    "p": "personalize",
    "personalize": "personalize",
}
URL_PARAMS = ("sref", "cref", "oref", "end")
_WEIGHT = re.compile(r"::-?(?:\d+\.?\d*|\.\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x80-\x9f]")


def clean_words(words: str) -> str:
    """The clean prompt of words the emulator wrote (no parameters or image URLs in them)."""
    text = _CONTROL.sub(" ", _WEIGHT.sub(" ", words))
    return re.sub(r"\s+", " ", text).strip().rstrip(",").strip()


def bare_url(token: str) -> str:
    return _WEIGHT.sub("", token).strip("<>")


def slug(words: str) -> str:
    """The prompt part of Midjourney file names: ASCII words joined by '_'."""
    kept = re.sub(r"[^A-Za-z0-9 ._-]", "", clean_words(words))
    return re.sub(r"\s+", "_", kept.strip())


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # as written, without the dash
    value: str = ""  # as written; "" for a flag
    dash: str = "--"

    @property
    def text(self) -> str:
        return f"{self.dash}{self.name} {self.value}" if self.value else f"{self.dash}{self.name}"

    @property
    def canonical(self) -> str:
        name = self.name.lower()
        return ALIASES.get(name, name)


@dataclass(frozen=True, slots=True)
class Prompt:
    """What goes between `**` and `**`, kept in parts."""

    text: str  # the user's words as echoed (quirks included)
    params: tuple[Param, ...] = ()
    lead: tuple[str, ...] = ()  # leading image prompts as written
    marker: str = ""  # a third-party proxy marker in front

    @property
    def raw(self) -> str:
        parts = [*self.lead, self.text, *(param.text for param in self.params)]
        return self.marker + " ".join(part for part in parts if part)

    @property
    def clean(self) -> str:
        return clean_words(self.text)

    @property
    def canonical_params(self) -> dict[str, str]:
        merged: dict[str, list[str]] = {}
        for param in self.params:
            values = merged.setdefault(param.canonical, [])
            if param.value.strip():
                values.append(param.value.strip())
        return {name: ", ".join(values) for name, values in merged.items()}

    @property
    def image_urls(self) -> tuple[str, ...]:
        urls = [bare_url(token) for token in self.lead]
        for param in self.params:
            if param.canonical in URL_PARAMS:
                urls += [bare_url(token) for token in param.value.split() if "://" in token]
        return tuple(urls)

    @property
    def has_image_reference(self) -> bool:
        return bool(self.image_urls)

    @property
    def aspect(self) -> str:
        aspect = "1:1"
        for param in self.params:
            if param.canonical == "aspect" and re.fullmatch(r"\d+:\d+", param.value.split(" ")[0]):
                aspect = param.value.split(" ")[0]
        return aspect

    def version(self, ms: int) -> str:
        """The model that ran: --v if given (--niji runs the niji model of that era), else the default."""
        version = eras.default_version(ms)
        for param in self.params:
            if param.canonical == "version":
                match = re.match(r"\d+(\.\d+)?", param.value)
                version = match.group(0) if match else version
        return version

    def with_aspect(self, aspect: str) -> Prompt:
        """Pan: Midjourney rewrites the ratio and moves it to the end."""
        kept = tuple(param for param in self.params if param.canonical != "aspect")
        return replace(self, params=(*kept, Param("ar", aspect)))

    def with_params(self, *extra: Param) -> Prompt:
        return replace(self, params=(*self.params, *extra))


# -- generating words ---------------------------------------------------------------------------


def _tags(r: Random, low: int, high: int) -> list[str]:
    pools = (STYLES, LIGHTING, CAMERA, MOODS)
    return [r.choice(r.choice(pools)) for _ in range(r.randint(low, high))]


def _words(r: Random, ms: int) -> str:
    """The user's words, from one of several realistic templates."""
    template = r.choices(range(10), weights=(30, 14, 8, 10, 8, 5, 4, 6, 8, 7))[0]
    subject = r.choice(SUBJECTS)
    if template == 0:  # the classic comma list
        words = ", ".join([subject, r.choice(PLACES), *_tags(r, 1, 8)])
    elif template == 1:
        words = f"{r.choice(MOODS)} {subject} {r.choice(ACTIONS)} {r.choice(PLACES)}, {r.choice(STYLES)}"
    elif template == 2:  # a short prompt: the subject and what makes it the user's own
        bare = subject.removeprefix("a ").removeprefix("an ")
        words = bare if r.random() < 0.1 else f"{bare} {r.choice(CLAUSES)}"
    elif template == 3:
        words = f"{r.choice(STYLES)} of {subject}, by {r.choice(ARTISTS)} and {r.choice(ARTISTS)}"
    elif template == 4:
        words = _cjk(r)
    elif template == 5:
        words = f"{subject} {r.choice(EMOJI)}{r.choice(EMOJI)} {r.choice(STYLES)}"
    elif template == 6:  # multi-prompt weights
        first, second = r.choice(SUBJECTS), r.choice(PLACES)
        weight = r.choice(("2", "1.5", "3", ".5", "-0.5"))
        words = r.choice(
            (f"{first}::{weight} {second}::1", f"{first} :: {second}", f"{first}::2 {r.choice(STYLES)}")
        )
    elif template == 7:  # hand-written prompts, most with the user's own additions
        words = r.choice(HANDWRITTEN)
        if r.random() < 0.7:
            words = ", ".join([words, *_tags(r, 1, 3)])
    elif template == 8:  # long natural language (v6+ style)
        words = (
            f"A {r.choice(MOODS)} scene of {subject} {r.choice(ACTIONS)} {r.choice(PLACES)}. "
            f"The image is rendered as {r.choice(STYLES)} with {r.choice(LIGHTING)}, {r.choice(CAMERA)}"
        )
    else:
        words = ", ".join([subject, *_tags(r, 3, 12), f"by {r.choice(ARTISTS)}"])
    return words


def _cjk(r: Random) -> str:
    """A Chinese, Japanese or Korean prompt: a subject and a scene, sometimes an English style."""
    if r.random() < 0.1:
        return r.choice(CJK_QUESTIONS)
    words = f"{r.choice(CJK_SUBJECTS)}{r.choice(('，', '、', ' '))}{r.choice(CJK_SCENES)}"
    return words if r.random() < 0.6 else f"{words}, {r.choice(STYLES)}"


def user_words(r: Random, ms: int) -> str:
    """Words plus the oddities real prompts carry (trailing commas, 'Aspect Ratio:', control chars)."""
    words = _words(r, ms)
    quirk = r.random()
    if quirk < 0.10:
        words += ","  # "cinematic light, --ar 9:16"
    elif quirk < 0.12:
        words = "  " + words.replace(", ", ",  ", 1)  # leading and doubled spaces
    elif quirk < 0.125:
        words = words.replace(" ", r.choice(CONTROL_CHARS), 1)
    return words


# -- generating parameters ------------------------------------------------------------------------

COMMON_ASPECTS = ("16:9", "9:16", "2:3", "3:2", "4:3", "3:4", "4:5", "21:9", "1:2", "2:1", "7:4", "5:4")
EXTREME_ASPECTS = ("3:1", "1:3", "4:1", "5:2", "45:103", "17:31")


def _aspect(r: Random, version: str) -> str:
    if eras.major(version) <= 4:
        return r.choice(tuple(eras.V4_TILES)[1:])
    if r.random() < 0.08:
        return r.choice(EXTREME_ASPECTS)
    return r.choice(COMMON_ASPECTS)


def make_params(r: Random, ms: int) -> list[Param]:
    """Parameters a user of that date would type (plus what Midjourney appends or rewrites)."""
    version = r.choice(eras.versions_at(ms)[-3:]) if r.random() < 0.2 else eras.default_version(ms)
    v = eras.major(version)
    params: list[Param] = []

    def maybe(p: float, *choices: Param) -> None:
        if r.random() < p:
            params.append(r.choice(choices))

    if r.random() < 0.45:
        params.append(Param(r.choice(("ar", "ar", "ar", "aspect")), _aspect(r, version)))
    if v <= 4:
        maybe(0.12, Param("q", ".5"), Param("q", "2"), Param("quality", "1"))
        maybe(0.06, Param("style", "4a"), Param("style", "4b"), Param("style", "4c"))
        maybe(0.04, Param("upbeta"), Param("uplight"))
        if eras.has("testp", ms):
            maybe(0.2, Param("testp"), Param("test"))
    else:
        maybe(0.08, Param("q", ".5"), Param("q", "2"), Param("quality", ".25"))
        if eras.has("style_raw", ms):
            maybe(0.2, Param("style", "raw"))
        if eras.has("weird", ms):
            maybe(0.04, Param("weird", str(r.choice((50, 250, 1000)))), Param("w", "500"))
        if eras.has("sref_code", ms):
            maybe(0.06, Param("sref", str(r.randrange(10**8, 10**10))), Param("sref", "random"))
            maybe(0.05, Param("p"), Param("p", f"{r.getrandbits(28):07x}"), Param("personalize", "v7l2kd5"))
        if eras.has("exp", ms):
            maybe(0.08, Param("exp", str(r.choice((5, 10, 25, 50)))))
        if v >= 7 and eras.has("draft", ms):
            maybe(0.05, Param("draft"))
        maybe(0.03, Param("repeat", str(r.randint(2, 4))), Param("r", "2"))
    maybe(0.2, Param(r.choice(("s", "stylize")), str(r.choice((50, 100, 250, 400, 750, 1000)))))
    maybe(0.1, Param(r.choice(("c", "chaos")), str(r.randint(0, 100))))
    maybe(0.05, Param("seed", str(r.randrange(2**32))))
    maybe(0.02, Param("tile"), Param("stop", str(r.choice((50, 80, 90)))))
    if r.random() < 0.08:
        params.append(Param("no", ", ".join(r.sample(NO_ITEMS, r.randint(1, 3)))))
        if r.random() < 0.25:  # repeated --no, the second with a space before its comma
            params.append(Param("no", f"{r.choice(NO_ITEMS)} , {r.choice(NO_ITEMS)}"))
    if r.random() < 0.05 and eras.has("niji", ms):
        params.append(Param("niji", "" if r.random() < 0.3 else str(max(4, min(v, 6)))))
    elif r.random() < 0.6:
        shown = f"{version}.0" if v >= 7 and "." not in version else version
        stray = " raw" if r.random() < 0.02 else ""
        params.append(Param(r.choice(("v", "v", "v", "version")), shown + stray))
    maybe(0.02, Param("relax"), Param("fast"), Param("turbo"))
    maybe(0.015, Param(r.choice(CUSTOM_PARAMS)))
    if v >= 7 and r.random() < 0.15:
        params.append(Param("raw"))  # v7 echoes --style raw as --raw, last
    if params and r.random() < 0.03:  # iOS autocorrect: "—ar 16:9"
        first = params[0]
        params[0] = Param(first.name, first.value, "—")
    if params and r.random() < 0.005:
        first = params[0]
        params[0] = Param(first.name.upper(), first.value, first.dash)
    return params


def s_mj_run(r: Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "https://s.mj.run/" + "".join(r.choice(alphabet) for _ in range(11))


def image_prompt_lead(r: Random) -> tuple[str, ...]:
    """1-3 leading image prompts: bracketed short links, sometimes bare CDN links or ::weights."""
    lead = []
    for _ in range(r.choice((1, 1, 1, 2, 2, 3))):
        if r.random() < 0.12:
            token = f"https://cdn.discordapp.com/attachments/{r.randrange(10**18, 10**19)}/ref.png"
        else:
            token = f"<{s_mj_run(r)}>"
        if r.random() < 0.15:
            token += f"::{r.choice(('2', '1', '.5', '3'))}"
        lead.append(token)
    return tuple(lead)


def fresh(r: Random, ms: int) -> Prompt:
    """A new /imagine prompt of that date."""
    marker = r.choice(PROXY_MARKERS) if r.random() < 0.005 else ""
    words, params = user_words(r, ms), make_params(r, ms)
    aspect = [param for param in params if param.canonical == "aspect"]
    if aspect and r.random() < 0.03:  # "... Aspect Ratio: --ar 16:9"
        words += " Aspect Ratio:"
        params = [*aspect, *(param for param in params if param.canonical != "aspect")]
    return Prompt(words, tuple(params), marker=marker)
