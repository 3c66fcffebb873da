"""Issue 13 item 6 bullet 3: `epochwatch score` warns on stderr, once per prompt, when a prompt
names nothing it can judge (or holds a malformed hex code); colour-word prompts are judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.degrade import degrade, load_avatars, pad_sprite
from watcher.cli import main


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("judge_cli")
    image, _ = degrade(pad_sprite(load_avatars()[3].rgb, 24, (0, 255, 0), 4, 8), np.random.default_rng(0))
    path = folder / "portrait.png"
    Image.fromarray(image).save(path)
    return path


def test_unjudgeable_prompt_warns_once_per_prompt(portrait: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.jsonl"
    lines = [{"image": str(portrait), "prompt": "a pixel art portrait"}] * 3
    lines.append({"image": str(portrait), "prompt": "pixel art portrait, green background"})
    lines.append({"image": str(portrait), "prompt": "a knight, 16-bit"})
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["score", "--manifest", str(manifest), "--json"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2, err
    assert "'a pixel art portrait'" in warnings[0] and "names no colour it can judge" in warnings[0]
    assert "'a knight, 16-bit'" in warnings[1]
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["background_match"] for r in rows] == [None, None, None, True, None]


def test_malformed_hex_warns_with_its_position(portrait: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(portrait), str(portrait), "--prompt", "solid green background (#00gg00)"]) == 0
    _, err = capsys.readouterr()
    assert err.count("warning") == 1
    assert "malformed colour code '#00gg00' at character 24" in err


def test_colour_words_are_judged_without_warning(portrait: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(portrait), "--json", "--prompt", "brown hair, pink background"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err
    row = json.loads(out)
    assert row["background_match"] is False and "wrong_background" in row["issues"]
    assert row["color_accuracy"] is not None and row["prompt_score"] is not None
    assert {m["role"] for m in row["per_color"]} == {"background", "hair"}
