"""Prompt parsing: hex codes, their phrase and role, the background."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluators import parse_prompt
from evaluators.color import hex_to_rgb, rgb_to_hex


def test_plan_prompt_gives_each_code_its_phrase_and_role() -> None:
    parsed = parse_prompt("pixel art portrait of a woman with pink hair (#ff66cc), "
                          "lips (#cc6666), solid green background (#00ff00)")
    assert [(c.hex, c.phrase, c.role) for c in parsed.colors] == [
        ("#ff66cc", "pink hair", "hair"),
        ("#cc6666", "lips", "lips"),
        ("#00ff00", "solid green background", "background"),
    ]
    assert parsed.background is not None and parsed.background.hex == "#00ff00"
    assert parsed.background.rgb == (0, 255, 0)
    assert [c.hex for c in parsed.foreground] == ["#ff66cc", "#cc6666"]


def test_case_spacing_and_three_digit_codes() -> None:
    parsed = parse_prompt("Pink Hair ( #FF66CC ) ,LIPS(#C66);solid GREEN   background(#0F0)")
    assert [c.hex for c in parsed.colors] == ["#ff66cc", "#cc6666", "#00ff00"]
    assert parsed.background is not None and parsed.background.phrase == "solid green background"


def test_prompt_without_codes_is_fine() -> None:
    parsed = parse_prompt("a pixel art portrait, 24x24, simple shading")
    assert parsed.colors == ()
    assert parsed.background is None
    assert parse_prompt("").colors == ()


def test_code_before_its_words_and_colon_forms() -> None:
    parsed = parse_prompt("(#ff0000) shirt, background: #123, eyes #00f")
    assert [(c.hex, c.role) for c in parsed.colors] == [
        ("#ff0000", "clothing"), ("#112233", "background"), ("#0000ff", "eyes")]


def test_kohya_options_and_negative_prompt_are_ignored() -> None:
    parsed = parse_prompt("green background (#00ff00), red hair (#ff0000) "
                          "--n blue background (#0000ff) --w 512 --h 512 --d 42")
    assert [c.hex for c in parsed.colors] == ["#00ff00", "#ff0000"]
    assert parsed.background is not None and parsed.background.hex == "#00ff00"


def test_not_codes_are_not_parsed() -> None:
    # too long, too short, part of a word, an HTML entity
    parsed = parse_prompt("colour #1234567, #12, a#fff, &#123; and hair #abcd")
    assert parsed.colors == ()


def test_duplicates_keep_the_first_phrase_but_background_stays_separate() -> None:
    parsed = parse_prompt("lips (#cc6666), blush (#CC6666), green shirt (#00ff00), "
                          "green background (#00ff00)")
    assert [(c.hex, c.role) for c in parsed.colors] == [
        ("#cc6666", "lips"), ("#00ff00", "clothing"), ("#00ff00", "background")]
    assert parsed.background is not None and parsed.background.phrase == "green background"


@given(
    rgb=st.tuples(*[st.integers(0, 255)] * 3),
    upper=st.booleans(),
    pad_in=st.sampled_from(["", " ", "  "]),
    word=st.sampled_from(["background", "Background", "BG", "backdrop"]),
)
def test_any_background_code_is_found(rgb: tuple[int, int, int], upper: bool, pad_in: str,
                                      word: str) -> None:
    code = rgb_to_hex(rgb)
    shown = code.upper() if upper else code
    parsed = parse_prompt(f"hair (#abcdef), solid {word}{pad_in}({pad_in}{shown}{pad_in})")
    assert parsed.background is not None
    assert parsed.background.hex == code
    assert hex_to_rgb(parsed.background.hex) == rgb
