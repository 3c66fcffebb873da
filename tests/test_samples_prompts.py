"""kohya's sample-prompt files in .txt, .toml and .json give the same prompts, in file order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.config import ConfigError
from watcher.prompts import PromptDefaults, SamplePrompt, parse_prompt_file
from watcher.samples.epochs import kohya_prompts

D = PromptDefaults(negative="lowres", seeds=(11, 12), width=512, height=512, steps=20, cfg=7.5)
EXPECTED = [
    SamplePrompt("pixel art, green background (#00ff00)", "blurry", 7, 640, 512, 12, 5.5),
    SamplePrompt("portrait, red hair (#ff0000)", "lowres", 11, 512, 512, 20, 7.5),
    SamplePrompt("portrait, red hair (#ff0000)", "lowres", 12, 512, 512, 20, 7.5),
    SamplePrompt("robot, grey (#808080)", "lowres", 3, 512, 512, 30, 7.5),
]

TXT = """# kohya sample prompts
pixel art, green background (#00ff00) --n blurry --w 640 --h 515 --d 7 --s 12 --l 5.5
portrait, red hair (#ff0000)
robot, grey (#808080) --ss euler_a --d 3 --s 30
"""

TOML = """
[prompt]
negative_prompt = "lowres"
width = 512
height = 512

[[prompt.subset]]
prompt = "pixel art, green background (#00ff00)"
negative_prompt = "blurry"
width = 640
height = 515
seed = 7
sample_steps = 12
scale = 5.5

[[prompt.subset]]
prompt = "portrait, red hair (#ff0000)"

[[prompt.subset]]
prompt = "robot, grey (#808080)"
sample_sampler = "euler_a"
seed = 3
sample_steps = 30
"""

JSON = [
    {"prompt": "pixel art, green background (#00ff00)", "negative_prompt": "blurry", "width": 640,
     "height": 515, "seed": 7, "sample_steps": 12, "scale": 5.5},
    "portrait, red hair (#ff0000)",  # a .txt-style line is allowed too
    {"prompt": "robot, grey (#808080)", "sample_sampler": "euler_a", "seed": 3, "sample_steps": 30},
]


@pytest.mark.parametrize(("name", "text"), [
    ("p.txt", TXT), ("p.toml", TOML), ("p.json", json.dumps(JSON)), ("P.JSON", json.dumps(JSON)),
])
def test_three_formats_same_prompts(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert parse_prompt_file(path, D) == EXPECTED


@pytest.mark.parametrize(("name", "text"), [("p.txt", TXT), ("p.toml", TOML), ("p.json", json.dumps(JSON))])
def test_kohya_prompts_one_entry_per_idx(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    got = kohya_prompts(path, D)
    assert [(k.idx, k.prompt.text, k.seed) for k in got] == [
        (0, "pixel art, green background (#00ff00)", 7),
        (1, "portrait, red hair (#ff0000)", None),  # no seed: kohya draws one
        (2, "robot, grey (#808080)", 3),
    ]


@pytest.mark.parametrize(("name", "text", "error"), [
    ("p.toml", "[prompt]\nwidth = 512\n", "expected a [prompt] table with [[prompt.subset]] entries"),
    ("p.toml", "prompt = [", "invalid TOML: "),
    ("p.toml", '[[prompt.subset]]\nprompt = "a"\nwidht = 512\n',
     "prompt.subset 1: unknown key 'widht' (known: prompt, negative_prompt, width, height, seed, "
     "sample_steps, scale)"),
    ("p.toml", '[[prompt.subset]]\nprompt = "a"\n[[prompt.subset]]\nprompt = "b"\nseed = "x"\n',
     "prompt.subset 2: seed: expected a whole number, got 'x'"),
    ("p.json", '{"prompt": "a"}', "expected a JSON list of prompts"),
    ("p.json", "[{]", "invalid JSON: "),
    ("p.json", '[{"prompt": "a", "width": 512.5}]', "prompt 1: width: expected a whole number, got 512.5"),
    ("p.json", '[{"prompt": "a", "sample_steps": 0}]', "prompt 1: --w, --h and --s must be positive"),
    ("p.json", '[{"negative_prompt": "x"}]', 'prompt 1: "prompt" must be a string'),
    ("p.json", '[{"prompt": "  "}]', "prompt 1: empty prompt text"),
    ("p.json", "[3]", "prompt 1: a prompt must be an object or a string"),
    ("p.json", '[{"prompt": "a", "negative_prompt": 5}]', "prompt 1: negative_prompt: expected a string, got 5"),
])
def test_bad_structured_files_one_line(tmp_path: Path, name: str, text: str, error: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        parse_prompt_file(path, D)
    message = str(info.value)
    assert message.startswith(f"{path}: {error}") and "\n" not in message.strip()
