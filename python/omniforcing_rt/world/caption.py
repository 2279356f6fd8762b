"""Captions of world scenes and their parsed form, the :class:`PromptSpec` the scorer checks.

A caption states exactly the attributes the scorer can verify from the media: how many balls,
their colours, the speed word, and the note each colour rings. It is a deterministic function of
the scene, e.g.::

    two balls, a red one and a blue one, bounce quickly in a box; the red ball rings a low note
    and the blue ball rings a high note.

:func:`parse_caption` reads any text back into a :class:`PromptSpec` (fields it cannot find stay
``None`` / empty), so the evaluator can score a model on captions it did not write itself;
``parse_caption(caption(scene)) == prompt_spec(scene)`` holds for every scene.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omniforcing_rt.world.scene import Scene, WorldConfig

__all__ = ["COUNT_WORDS", "PromptSpec", "caption", "parse_caption", "prompt_spec"]

COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
"""Number words used for the ball count."""


@dataclass(frozen=True)
class PromptSpec:
    """The verifiable attributes a caption asks for."""

    count: int | None
    """Number of balls (None: not stated)."""
    colours: tuple[str, ...]
    """Ball colours in caption order (each at most once)."""
    speed: str | None
    """Speed word (a key of ``WorldConfig.speed_bands``) or None."""
    notes: tuple[tuple[str, str], ...]
    """(colour, pitch word) pairs stated by the caption, in caption order."""


def prompt_spec(scene: Scene) -> PromptSpec:
    """The attributes of ``scene`` (what its caption states)."""
    colours = tuple(b.colour for b in scene.balls)
    notes = tuple((c, scene.config.colour(c).pitch_word) for c in colours)
    return PromptSpec(len(colours), colours, scene.speed_word, notes)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(scene: Scene) -> str:
    """The scene's caption (deterministic; see the module docstring)."""
    spec = prompt_spec(scene)
    n = spec.count or 0
    count = COUNT_WORDS[n] if n < len(COUNT_WORDS) else str(n)
    noun, verb = ("ball", "bounces") if n == 1 else ("balls", "bounce")
    which = _join([f"a {c} one" for c in spec.colours])
    notes = _join([f"the {c} ball rings a {w} note" for c, w in spec.notes])
    return f"{count} {noun}, {which}, {verb} {spec.speed} in a box; {notes}."


def parse_caption(text: str, config: WorldConfig) -> PromptSpec:
    """Read the attributes back from any caption-like text (see the module docstring)."""
    low = " ".join(text.lower().split())
    count = None
    m = re.match(r"^(\w+) balls?\b", low)
    if m:
        word = m.group(1)
        count = COUNT_WORDS.index(word) if word in COUNT_WORDS else int(word) if word.isdigit() else None
    names = [c.name for c in config.palette]
    found = sorted((m.start(), n) for n in names for m in [re.search(rf"\b{re.escape(n)}\b", low)] if m)
    colours = tuple(n for _, n in found)
    speed = next((w for w in sorted(config.speed_bands) if re.search(rf"\b{re.escape(w)}\b", low)), None)
    words = sorted({c.pitch_word for c in config.palette}, key=len, reverse=True)
    pattern = rf"\b({'|'.join(map(re.escape, names))}) ball rings a ({'|'.join(map(re.escape, words))}) note"
    notes = tuple((m.group(1), m.group(2)) for m in re.finditer(pattern, low))
    return PromptSpec(count, colours, speed, notes)
