"""Issue 13 item 1: colour intent from prompt phrases (hex codes and colour words), colour
categories as a reviewer files them, and what judgeable_metrics / malformed_hex make of them."""

from __future__ import annotations

import time

import pytest

from evaluators import parse_prompt
from evaluators.aggregate import judgeable_metrics
from evaluators.colornames import classify_rgb
from evaluators.prompt import malformed_hex


def _hex(code: str) -> tuple[int, int, int]:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


def test_colour_words_get_roles_references_and_categories() -> None:
    parsed = parse_prompt("pixel art portrait of a girl with blonde hair and blue eyes, "
                          "red shirt, light pink background")
    got = [(c.role, c.category, c.source) for c in parsed.colors]
    assert got == [("hair", "beige", "word"), ("eyes", "blue", "word"),
                   ("clothing", "red", "word"), ("background", "pink", "word")]
    bg = parsed.background
    assert bg is not None and bg.lightness == "light" and bg.specific
    assert classify_rgb(bg.rgb) == "pink"          # the reference is itself that colour
    hair = parsed.colors[0]
    assert {"yellow", "beige"} <= hair.accept and "orange" not in hair.accept


def test_hex_code_takes_its_category_from_the_words_around_it() -> None:
    parsed = parse_prompt("dark red hair (#611c17), solid green background (#00ff00)")
    hair, bg = parsed.colors
    assert (hair.hex, hair.category, hair.lightness, hair.source) == ("#611c17", "red", "dark", "hex")
    assert (bg.hex, bg.category, bg.source) == ("#00ff00", "green", "hex")
    assert parsed.background_structure == "solid"


@pytest.mark.parametrize("text, structure, categories", [
    ("teal gradient background", "gradient", ["teal"]),
    ("blue to purple gradient background", "gradient", ["blue", "purple"]),
    ("black and white checkered background", "checkered", ["black", "white"]),
    ("blue and pink two-tone background", "two_tone", ["blue", "pink"]),
    ("plain grey background", "solid", ["grey"]),
])
def test_background_structure_and_several_background_colours(text: str, structure: str,
                                                            categories: list[str]) -> None:
    parsed = parse_prompt(f"pixel art portrait, {text}")
    assert parsed.background_structure == structure
    assert [c.category for c in parsed.backgrounds] == categories


@pytest.mark.parametrize("code, category", [
    ("#008080", "teal"), ("#20b2aa", "teal"), ("#00a6a6", "teal"),       # neither blue nor green
    ("#808000", "olive"), ("#6e750e", "olive"), ("#bdb76b", "olive"),     # not green
    ("#00ff00", "green"), ("#41e066", "green"), ("#2e8b57", "green"),
    ("#c79fef", "purple"), ("#c080ff", "purple"), ("#6a0dad", "purple"),  # lavender is a purple
    ("#ffd700", "yellow"), ("#ffffff", "white"), ("#101010", "black"),
])
def test_category_edge_cases(code: str, category: str) -> None:
    assert classify_rgb(_hex(code)) == category


def test_lavender_is_light_purple_and_blonde_is_not_orange() -> None:
    lavender = parse_prompt("lavender dress").colors[0]
    assert lavender.category == "purple" and lavender.specific   # a deep purple is too dark
    blonde = parse_prompt("blonde hair").colors[0]
    yellow = parse_prompt("yellow hair").colors[0]
    assert blonde.specific and not yellow.specific
    assert "yellow" in blonde.accept and "orange" not in blonde.accept
    assert yellow.accept == frozenset({"yellow"})


def test_skin_words_are_skin_tones_not_colour_names() -> None:
    olive = parse_prompt("olive skin").colors[0]
    assert olive.role == "skin" and "olive" not in olive.accept and "brown" in olive.accept
    pale = parse_prompt("pale skin").colors[0]
    assert pale.lightness == "light"
    coded = parse_prompt("skin (#f0c090)").colors[0]
    assert "green" not in coded.accept and "beige" in coded.accept


def test_words_without_a_role_or_in_the_negative_prompt_do_not_count() -> None:
    assert parse_prompt("a pixel art portrait, 24x24, simple shading, dark mood").colors == ()
    parsed = parse_prompt("green background --n blue background, red hair")
    assert [(c.role, c.category) for c in parsed.colors] == [("background", "green")]


def test_judgeable_metrics_counts_colour_words() -> None:
    words = parse_prompt("pixel art portrait, blue background")
    hair = parse_prompt("pixel art portrait, blonde hair")
    none = parse_prompt("pixel art portrait")
    assert "background_match_rate" in judgeable_metrics([words])
    assert {"color_accuracy", "prompt_score"} <= judgeable_metrics([hair])
    assert "background_match_rate" not in judgeable_metrics([hair, none])
    assert "color_accuracy" not in judgeable_metrics([none])


def test_malformed_hex_still_found_and_parsing_is_cheap() -> None:
    assert [(m.position, m.token) for m in malformed_hex("solid green background (#00gg00)")] == [(24, "#00gg00")]
    assert malformed_hex("blue background, blonde hair") == []
    parse_prompt("warm up")
    start = time.perf_counter()
    for _ in range(100):
        parse_prompt("pixel art portrait, blonde hair, blue eyes, red shirt, teal gradient background")
    assert (time.perf_counter() - start) / 100 < 0.02       # config load parses every prompt


def test_each_colour_word_takes_the_role_of_the_noun_it_describes() -> None:
    parsed = parse_prompt("pixel art of a woman wearing a red hat and a yellow scarf on a dark blue "
                          "background, a red-haired girl with green-eyed stare")
    assert [(c.role, c.category) for c in parsed.colors] == [
        ("accessory", "red"), ("accessory", "yellow"), ("background", "blue"),
        ("hair", "red"), ("eyes", "green")]
    assert parsed.background is not None and parsed.background.lightness == "dark"
