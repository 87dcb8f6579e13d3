"""The train/validation split: a salted hash of the normalised clean prompt.

validation iff sha256(salt + NUL + normalised prompt) mod 21 == 0, so every image of one prompt
lands in the same split (no prompt leaks between splits, as in JourneyDB), the expected ratio is
20:1, and a sample's split depends on nothing but its own prompt and the salt: it never moves when
new data arrives.
"""

from __future__ import annotations

import hashlib
import unicodedata

VALIDATION_MODULUS = 21


def normalise_prompt(prompt: str) -> str:
    """NFKC, then case-folded, then whitespace runs collapsed to one space and the ends stripped.

    NFKC folds compatibility forms (full-width letters, ligatures, superscripts) so that prompts a
    reader would call identical hash identically; casefold is Unicode-aware lower-casing.
    """
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def prompt_hash(prompt: str, salt: str) -> int:
    """A stable 64-bit integer for the prompt (never Python's randomised `hash()`)."""
    blob = f"{salt}\x00{normalise_prompt(prompt)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def split_of(prompt: str, salt: str) -> str:
    return "validation" if prompt_hash(prompt, salt) % VALIDATION_MODULUS == 0 else "train"
