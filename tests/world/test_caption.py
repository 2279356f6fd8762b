"""Captions: deterministic, and the parser reads back exactly what the caption states."""

from __future__ import annotations

from omniforcing_rt.world.caption import PromptSpec, caption, parse_caption, prompt_spec
from omniforcing_rt.world.scene import WorldConfig, sample_scene

CFG = WorldConfig()


def test_caption_round_trip() -> None:
    counts = set()
    for seed in range(40):
        s = sample_scene(CFG, seed)
        spec = prompt_spec(s)
        counts.add(spec.count)
        assert caption(s) == caption(sample_scene(CFG, seed))
        assert parse_caption(caption(s), CFG) == spec
        assert spec.count == len(s.balls) and set(spec.colours) == {b.colour for b in s.balls}
    assert counts == {1, 2, 3}


def test_caption_text() -> None:
    s = next(s for s in (sample_scene(CFG, i) for i in range(50)) if len(s.balls) == 2)
    a, b = (x.colour for x in s.balls)
    text = caption(s)
    assert text.startswith(f"two balls, a {a} one and a {b} one, bounce {s.speed_word} in a box; ")
    assert f"the {a} ball rings a {CFG.colour(a).pitch_word} note" in text


def test_parse_free_text() -> None:
    spec = parse_caption("A red ball bounces on a wooden floor", CFG)
    assert spec == PromptSpec(None, ("red",), None, ())
    spec = parse_caption("Three balls: yellow, blue and red, quickly. The Yellow ball rings a very high note", CFG)
    assert spec.count == 3 and spec.colours == ("yellow", "blue", "red") and spec.speed == "quickly"
    assert spec.notes == (("yellow", "very high"),)
