"""Refused at load, in one line naming the key and file (exit 2 from any command): a threshold
outside its metric's range (watcher.rules.METRIC_RANGES), an empty prompt list from any source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from watcher.config import ConfigError, load_config
from watcher.rules import METRIC_RANGES, METRICS, Rule

REPO = Path(__file__).resolve().parents[1]
HEAD = """\
[run]
name = "r1"
output_dir = "out"
output_name = "lora"
max_train_epochs = 10

[model]
base = "tiny-model"
"""
GREEN = 'prompts = [{ text = "pixel art cat, solid green background (#00ff00)" }]\n'


def criterion(metric: str, threshold: float) -> str:
    return (f'[sampling]\n{GREEN}\n[[criteria]]\nname = "r"\nmetric = "{metric}"\n'
            f"threshold = {threshold}\nepoch = 4\n")


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(HEAD + text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


def test_every_metric_has_its_declared_range() -> None:
    assert set(METRIC_RANGES) == set(METRICS)
    assert METRIC_RANGES["background_match_rate"] == (0.0, 1.0)
    assert METRIC_RANGES["color_accuracy"] == (0.0, 100.0)
    assert METRIC_RANGES["overall_score"] == (1.0, 10.0)


@pytest.mark.parametrize(("metric", "threshold", "span"), [
    ("background_match_rate", 50, "0..1"), ("color_accuracy", 101, "0..100"),
    ("overall_score", 0.5, "1..10"), ("style_score", 11, "1..10"), ("unique_colors", -1, "0..inf"),
])
def test_threshold_outside_the_metric_range_is_refused(tmp_path: Path, metric: str,
                                                       threshold: float, span: str) -> None:
    message = refusal(tmp_path, criterion(metric, threshold))
    assert message == (f"{tmp_path / 'c.toml'}:15: criteria[0].threshold: {threshold:g} is "
                       f"outside {metric}'s range ({span})")


def test_thresholds_at_the_range_ends_load(tmp_path: Path) -> None:
    for metric, (low, high) in METRIC_RANGES.items():
        for value in (low, 1e6 if high is None else high):
            Rule("r", metric, ">=", value, epoch=1)  # code-built rules are checked alike
    (tmp_path / "ok.toml").write_text(HEAD + criterion("background_match_rate", 1))
    assert load_config(tmp_path / "ok.toml").rules()[0].threshold == 1.0
    with pytest.raises(ValueError, match="outside overall_score's range"):
        Rule("r", "overall_score", ">=", 11, epoch=1)


def test_empty_prompt_list_from_any_source_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, "[sampling]\nprompts = []\n") == \
        f"{tmp_path / 'c.toml'}:10: sampling.prompts: the list is empty: give at least one prompt"
    empty = tmp_path / "prompts.txt"
    empty.write_text("# only a comment\n\n")
    assert refusal(tmp_path, f'[sampling]\nprompts_file = "{empty}"\n') == \
        f"{empty}: no prompts in the file (the prompt list is empty)"
    assert refusal(tmp_path, f'[sampling]\n{GREEN}review_prompts_file = "{empty}"\n') == \
        f"{empty}: no prompts in the file (sampling.review_prompts_file)"


def test_watch_once_refuses_it_in_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(HEAD + criterion("background_match_rate", 50))
    proc = subprocess.run([sys.executable, "-m", "watcher", "watch", "--config",
                           str(tmp_path / "c.toml"), "--once"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "criteria[0].threshold: 50 is outside background_match_rate's range (0..1)" in proc.stderr
