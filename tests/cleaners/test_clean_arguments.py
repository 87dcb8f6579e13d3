"""Prompt/parameter splitting: a table of real-looking prompts and hypothesis properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midshard.cleaners.arguments import ALIASES, INTRODUCER, Arguments, split_prompt

S = "https://s.mj.run"

TABLE: list[tuple[str, Arguments]] = [
    (
        "The wolf is coming. --s 750 --v 5.2",
        Arguments("The wolf is coming.", {"stylize": "750", "version": "5.2"}),
    ),
    # every introducer and any case
    (
        "a cat —ar 16:9 –V 6 --Stylize 50 --AR 2:3",
        Arguments("a cat", {"aspect": "16:9, 2:3", "version": "6", "stylize": "50"}),
    ),
    # greedy values, repeats, flags, custom names
    (
        "a room --no background scenery, drop shadow, frame --tile --pic --my_macro x",
        Arguments(
            "a room", {"no": "background scenery, drop shadow, frame", "tile": "", "pic": "", "my_macro": "x"}
        ),
    ),
    (
        "a room --no boy --no car , dog --tile --tile",
        Arguments("a room", {"no": "boy, car , dog", "tile": ""}),
    ),
    # a parameter value of several words keeps its inner text, whitespace collapsed
    ("a city --v 5.1   raw --s 250", Arguments("a city", {"version": "5.1 raw", "stylize": "250"})),
    # multi-prompt weights
    (
        "hot dog::1.5 food::-1 text ::3 more :: other::-.5 end::",
        Arguments("hot dog food text more other end"),
    ),
    ("a::b", Arguments("a b")),
    # oddities of real prompts
    ("fast car (fast) racing, --ar 9:16", Arguments("fast car (fast) racing", {"aspect": "9:16"})),
    ("a poster Aspect Ratio: --ar 16:9", Arguments("a poster Aspect Ratio:", {"aspect": "16:9"})),
    (" girl flips her hair --v 4", Arguments("girl flips her hair", {"version": "4"})),
    ("梵高，向日葵", Arguments("梵高，向日葵")),
    ("南极应该是什么样子？ --niji 5", Arguments("南极应该是什么样子？", {"niji": "5"})),
    ("well--known x -- y --- z a-b", Arguments("well--known x -- y --- z a-b")),
    # proxy markers, glued or not, before image prompts
    ("[8262694398550213] a cat", Arguments("a cat")),
    ("<#3935532608#>a cat", Arguments("a cat")),
    (
        "<<<!7e867efc0017!>>> <https://s.mj.run/abcdefghijk> a cat",
        Arguments("a cat", {}, (f"{S}/abcdefghijk",)),
    ),
    # image URLs: leading ones and those inside reference parameters
    (
        f"<{S}/a> <{S}/b>::2 x --sref <{S}/c> <{S}/d>::3 --cref {S}/e --end <{S}/f> --oref 12",
        Arguments(
            "x",
            {"sref": f"<{S}/c> <{S}/d>::3", "cref": f"{S}/e", "end": f"<{S}/f>", "oref": "12"},
            (f"{S}/a", f"{S}/b", f"{S}/c", f"{S}/d", f"{S}/e", f"{S}/f"),
        ),
    ),
    ("a link https://example.com/x in text", Arguments("a link https://example.com/x in text")),
    # control characters and NUL
    ("a\x00cat\t--v\n5\x7f\x85", Arguments("a cat", {"version": "5"})),
    ("\x00--ar 1:1", Arguments("", {"aspect": "1:1"})),
    # removing a weight exposes a parameter: it is a parameter (the split is a fixpoint)
    ("a::--v 5", Arguments("a", {"version": "5"})),
    ("::[12] cat", Arguments("cat")),
    # `--w` is width only in versions 1-3; `--h` is height
    ("x --w 768 --h 512 --v 3", Arguments("x", {"width": "768", "height": "512", "version": "3"})),
    ("x --weird 768 --v 3", Arguments("x", {"weird": "768", "version": "3"})),
    ("x --w 768 --v 6", Arguments("x", {"weird": "768", "version": "6"})),
    ("", Arguments("")),
    ("--", Arguments("--")),
    (", , ,", Arguments("")),
]


@pytest.mark.parametrize(("raw", "expected"), TABLE)
def test_table(raw: str, expected: Arguments) -> None:
    assert split_prompt(raw) == expected


def test_huge_prompts() -> None:
    words = "a majestic castle, " * 6000  # ~110 kB
    result = split_prompt(words + "--ar 16:9 --no " + "x, " * 5000)
    assert result.prompt == words.strip(" ,") and result.params["aspect"] == "16:9"
    assert len(result.params["no"]) == len("x, " * 5000) - 1
    hostile = "::[1]" * 20000 + "<" * 20000 + "https://" + "a" * 50000
    assert split_prompt(hostile).prompt == split_prompt(split_prompt(hostile).prompt).prompt
    assert split_prompt("," * 100_000 + "x").prompt == "," * 100_000 + "x"


# -- properties -----------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HIDDEN = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_JOINER = re.compile("[\u200c\u200d]")
# Text that is dense in the characters the grammar cares about.
_TOKEN = st.one_of(
    st.sampled_from(["-", "—", "–", ":", ",", " ", "<", ">", "#", "[", "]", "\x00", "\n", "\u3000", "h"]),
    st.sampled_from(
        ["\u200b", "\u200c", "\u200d", "\u202e", "\u2066", "\ufeff", "é", "\U0001f469", "\u0915"]
    ),
    st.sampled_from(["--ar", "—v", "::", "::2", "https://", "s.mj.run/x", "<<<", ">>>", "5", ".", "[12]"]),
    st.characters(),
)
_TRICKY = st.lists(_TOKEN, max_size=40).map("".join)
_ANY = st.one_of(st.text(), _TRICKY, st.lists(_TRICKY, max_size=5).map("".join))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(_ANY)
def test_never_raises_and_is_idempotent(raw: str) -> None:
    first = split_prompt(raw)
    again = split_prompt(first.prompt)
    assert again == Arguments(first.prompt)
    assert INTRODUCER.search(first.prompt) is None
    assert not _CONTROL.search(first.prompt)
    assert first.prompt == first.prompt.strip() and not first.prompt.endswith(",")
    assert all(_CONTROL.search(v) is None for v in first.params.values())
    assert not _HIDDEN.search(first.prompt)
    for joiner in _JOINER.finditer(first.prompt):  # only between two non-ASCII, non-space characters
        before, after = first.prompt[joiner.start() - 1], first.prompt[joiner.end()]
        assert not (before.isascii() or before.isspace() or after.isascii() or after.isspace())


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.:!?'()", min_size=1, max_size=8).filter(
    lambda w: "::" not in w and not w.startswith(("http", ":"))
)
_NAMES = sorted({*ALIASES, "ar", "sref", "no", "tile", "seed", "style", "raw", "mycustom"} - {"w"})


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    prompt=st.lists(_WORD, max_size=6),
    params=st.lists(st.tuples(st.sampled_from(_NAMES), st.lists(_WORD, max_size=3)), max_size=5),
    dashes=st.lists(st.sampled_from(["--", "—", "–"]), min_size=5, max_size=5),
    upper=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_built_prompts_round_trip(prompt: list[str], params: list, dashes: list, upper: list) -> None:
    parts = [" ".join(prompt)]
    expected: dict[str, list[str]] = {}
    for (name, value), dash, up in zip(params, dashes, upper, strict=False):
        parts.append(f"{dash}{name.upper() if up else name} {' '.join(value)}".rstrip())
        key = ALIASES.get(name, name)
        expected.setdefault(key, [])
        if value:
            expected[key].append(" ".join(value))
    result = split_prompt(" ".join(parts))
    assert result.prompt == " ".join(prompt).rstrip(",")
    assert result.params == {k: ", ".join(v) for k, v in expected.items()}
    assert result.image_urls == ()
