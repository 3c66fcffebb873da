"""The epoch's numbers declared once (watcher.metrics.EpochAggregate) and the run's verdict
(watcher.epoch.decide.Verdict): typed, and their dicts byte for byte what was always written."""

from __future__ import annotations

import json
from pathlib import Path

from evaluators.aggregate import aggregate_epoch
from watcher.epoch.decide import PLAN_RULES, EpochRecord, Verdict, verdict
from watcher.metrics import LABELS, SAMPLE_METRICS, EpochAggregate, percent_scale
from watcher.rules import METRIC_RANGES, METRICS, metric_value

SCORES = [
    {"background_match": True, "background_outcome": "right", "color_accuracy": 80.0,
     "style_quality": 70.0, "visual_score": 7.0, "style_score": 6.0, "prompt_score": 8.0,
     "unique_colors": 12, "background_hex": "#00ff00", "issues": ["wrong_hair"]},
    {"background_match": False, "background_outcome": "partly", "color_accuracy": 40.0,
     "style_quality": 50.0, "visual_score": 5.0, "style_score": 4.0, "prompt_score": 3.0,
     "unique_colors": 20, "background_hex": "#ffffff", "issues": []},
]


def test_declared_fields_are_the_evaluators_keys_in_order() -> None:
    """A metric added to aggregate_epoch must be declared (with its range) in EpochAggregate."""
    produced = aggregate_epoch(SCORES)
    assert list(EpochAggregate.from_dict(produced).to_dict()) == list(produced)
    assert EpochAggregate.from_dict(produced).extra == {}
    assert set(SAMPLE_METRICS) <= set(produced) and set(METRICS) == set(METRIC_RANGES)
    assert METRIC_RANGES["background_match_rate"] == (0.0, 1.0)
    assert percent_scale("background_match_rate") == 100.0 and percent_scale("color_accuracy") == 1.0
    assert LABELS["color_accuracy"] == "colour accuracy"


def test_round_trip_is_byte_for_byte() -> None:
    produced = aggregate_epoch(SCORES)
    agg = EpochAggregate.from_dict(produced)
    assert json.dumps(agg.to_dict(), indent=2) == json.dumps(produced, indent=2)
    assert agg.background_match_rate == 0.5 and agg.issues == ("wrong_hair",)
    assert agg.n_images == 2 and agg.get("overall_score") == produced["overall_score"]


def test_an_old_metrics_json_loads_and_writes_back_unchanged(tmp_path: Path) -> None:
    """A file from before clip_score and background_partly_rate, with a key no longer made."""
    old = {"background_match_rate": 0.25, "color_accuracy": 41.0, "style_quality": 63.2,
           "overall_score": 3.4, "n_images": 4, "issues": [], "legacy_key": {"x": 1}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"aggregate": old}, sort_keys=True))
    read = json.loads(path.read_text())["aggregate"]
    agg = EpochAggregate.from_dict(read)
    assert json.dumps(agg.to_dict()) == json.dumps(read)  # same keys, same order
    assert agg.clip_score is None and "clip_score" not in agg
    # the rules tell "not written" from "no value", as they do for a dict
    assert metric_value(agg, "clip_score") == metric_value(old, "clip_score")
    assert metric_value(agg, "color_accuracy") == (41.0, "")


def test_verdict_is_typed_and_keeps_its_dict() -> None:
    history = [EpochRecord(e, EpochAggregate.from_dict({"background_match_rate": rate,
                                                        "overall_score": score}))
               for e, (rate, score) in enumerate([(0.0, 3.0), (0.0, 3.5), (0.0, 4.0), (0.0, 4.2)], 1)]
    result = verdict(PLAN_RULES, history)
    assert isinstance(result, Verdict) and result.verdict == "failure" and result.best_epoch == 4
    assert result.stop_failures and result.stop_failures[0]["epoch"] == 4
    assert Verdict.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert list(result.to_dict())[:3] == ["verdict", "reasons", "best_epoch"]
