"""Decision rules on metric series: the plan's Epoch 4 gate, oscillation, boundaries,
missing metrics, skipped epochs, determinism, storage, and the run verdict."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tomllib
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.epoch.decide import EpochRecord, decide, decide_all, verdict
from watcher.rules import OUTCOMES, PLAN_RULES, Decision, Rule
from watcher.store import Store

GATE = "green_background_by_epoch_4"
# the KEEP_TOKENS_3 plan's line between failure and partial success, read from its plan.toml
KEEP_TOKENS_3_PARTIAL = tomllib.loads((Path(__file__).parents[1] / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT"
                                       / "plan.toml").read_text())["plan"]["partial_at_least"]
STABLE = "background_oscillation"


def run(bg: list[float | None], score: list[float | None] | None = None,
        color: list[float | None] | None = None, first: int = 1, step: int = 1) -> list[EpochRecord]:
    """A metric series as EpochRecords (epochs first, first+step, ...)."""
    score = score or [6.0] * len(bg)
    color = color or [50.0] * len(bg)
    return [EpochRecord(first + i * step, {"background_match_rate": b, "overall_score": s,
                                          "color_accuracy": c, "background_hex": "#00ff00"})
            for i, (b, s, c) in enumerate(zip(bg, score, color, strict=True))]


def by_name(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.criterion: d for d in decisions}


def test_green_by_epoch_3_continues() -> None:
    history = run([0.0, 0.25, 0.75, 1.0, 1.0])
    all_decisions = decide_all(PLAN_RULES, history)
    assert not any(d.stops for ds in all_decisions.values() for d in ds)
    at3, at4 = by_name(all_decisions[3]), by_name(all_decisions[4])
    assert at3[GATE].outcome == "pending"  # judged on epoch 4's value, not earlier
    assert at3[STABLE].outcome == "pass" and at3[STABLE].evidence["reached_at"] == [3]
    assert at3[STABLE].message.endswith("reached")
    assert "stable since epoch 3" in at4[STABLE].message
    assert at4[GATE].outcome == "pass" and at4[GATE].action == "none"
    assert at4[GATE].value == 1.0 and at4[GATE].evidence["judged_at"] == 4
    assert GATE not in by_name(all_decisions[5])  # judged once


def test_never_green_stops_at_4_once() -> None:
    history = run([0.0, 0.0, 0.1, 0.25, 0.25])
    for epoch in (1, 2, 3):
        gate = by_name(decide(PLAN_RULES, history, epoch))[GATE]
        assert gate.outcome == "pending" and not gate.stops
    gate = by_name(decide(PLAN_RULES, history, 4))[GATE]
    assert gate.stops and gate.outcome == "fail" and gate.action == "stop"
    assert gate.value == 0.25 and gate.threshold == 0.5 and gate.comparison == ">="
    assert "0.25 < 0.5 at epoch 4" in gate.message and gate.message.endswith("-> stop")
    assert gate.evidence["series"] == [[1, 0.0], [2, 0.0], [3, 0.1], [4, 0.25]]
    assert GATE not in by_name(decide(PLAN_RULES, history, 5))  # the stop fires only at 4


def test_green_then_purple_alerts_oscillation() -> None:
    history = run([0.0, 0.75, 0.0, 0.75])
    at3 = by_name(decide(PLAN_RULES, history, 3))
    osc = at3[STABLE]
    assert osc.outcome == "fail" and osc.action == "alert" and osc.alerts
    assert osc.evidence["reached_at"] == [2] and osc.value == 0.0
    assert "oscillation" in osc.message
    assert not any(d.stops for d in at3.values())  # alert, no stop before epoch 4
    at4 = by_name(decide(PLAN_RULES, history, 4))
    assert at4[STABLE].outcome == "pass" and at4[GATE].outcome == "pass"


def test_oscillation_not_reached_is_pending_not_fail() -> None:
    history = run([0.0, 0.1])
    osc = by_name(decide(PLAN_RULES, history, 2))[STABLE]
    assert osc.outcome == "pending" and osc.action == "none"


@pytest.mark.parametrize(("comparison", "value", "outcome"), [
    (">=", 0.5, "pass"), (">=", 0.4999, "fail"), (">", 0.5, "fail"), (">", 0.5001, "pass"),
    ("<=", 0.5, "pass"), ("<=", 0.5001, "fail"), ("<", 0.5, "fail"), ("<", 0.4999, "pass"),
    ("==", 0.5, "pass"), ("==", 0.51, "fail"),
    (">=", 0.1 + 0.2 + 0.2 - 0.0000000000000001, "pass"),  # float noise around 0.5
    (">=", 0.4999999999, "pass"),  # rounded to 9 places: counts as 0.5
    (">=", 0.499999999, "fail"),  # a real difference at the 9th place still fails
])
def test_boundaries(comparison: str, value: float, outcome: str) -> None:
    rule = Rule("r", "background_match_rate", comparison, 0.5, epoch=4, mode="at", action="alert")
    d = decide([rule], [EpochRecord(4, {"background_match_rate": value})], 4)[0]
    assert d.outcome == outcome
    assert d.action == ("alert" if outcome == "fail" else "none")


def test_candidate_boundary_marks_8_5() -> None:
    rule = next(r for r in PLAN_RULES if r.mode == "candidate")
    scores = [8.49, 8.5, (8.2 + 8.6 + 8.7) / 3, 9.0]
    history = [EpochRecord(e, {"overall_score": s}) for e, s in enumerate(scores, 1)]
    outcomes = [decide([rule], history, e)[0].outcome for e in range(1, 5)]
    assert outcomes == ["unmarked", "marked", "marked", "marked"]
    assert decide([rule], history, 2)[0].action == "mark"


@pytest.mark.parametrize(("metrics", "why"), [
    ({"background_match_rate": None}, "no value"),
    ({}, "not among"),
    ({"background_match_rate": math.nan}, "not finite"),
    ({"background_match_rate": "0.5"}, "not a number"),
    ({"background_match_rate": True}, "not a number"),
])
def test_missing_metric_when_due_cannot_be_judged(metrics: dict[str, Any], why: str) -> None:
    # Issue 13: never a silent "pending" once the rule is due; an alert says why.
    history = run([0.0, 0.0, 0.0]) + [EpochRecord(4, metrics)]
    decisions = by_name(decide(PLAN_RULES, history, 4))
    for name in (GATE, STABLE):
        d = decisions[name]
        assert d.outcome == "cannot_judge" and d.action == "alert" and d.value is None
        assert why in d.message and "background_match_rate" in d.message
        assert d.evidence["reason"] == "missing_metric"
        assert d.alert_kind == "cannot_judge" and not d.stops


def test_on_missing_stop_stops_when_the_metric_is_missing_at_its_epoch() -> None:
    rule = Rule("gate", "background_match_rate", ">=", 0.5, epoch=4, on_missing="stop",
                action="stop")
    history = run([0.0, 0.0, 0.0, None])
    assert decide([rule], history, 3)[0].outcome == "pending"  # not due yet: no alarm
    d = decide([rule], history, 4)[0]
    assert (d.outcome, d.action, d.stops) == ("cannot_judge", "stop", True)
    assert d.message.startswith("gate: cannot judge: background_match_rate has no value")
    assert d.message.endswith("-> stop")
    assert verdict([rule], history).verdict == "failure"
    with pytest.raises(ValueError, match="on_missing must be one of alert, stop"):
        Rule("x", "overall_score", ">=", 1, epoch=1, on_missing="ignore")


def test_by_rule_missing_at_4_is_judged_at_next_epoch_with_a_value() -> None:
    history = run([0.0, 0.0, 0.0, None, 0.0, 0.0])
    assert by_name(decide(PLAN_RULES, history, 4))[GATE].outcome == "cannot_judge"
    at5 = by_name(decide(PLAN_RULES, history, 5))[GATE]
    assert at5.stops and at5.evidence["judged_at"] == 5
    assert GATE not in by_name(decide(PLAN_RULES, history, 6))


def test_skipped_epochs_every_2() -> None:
    # save_every_n_epochs = 2: epochs 2, 4, 6, 8 and the final file as 10.
    history = run([0.0, 0.75, 0.75, 0.75, 0.75], score=[6, 7, 7.5, 8.2, 8.6],
                  color=[40, 60, 85, 90, 90], first=2, step=2)
    per_epoch = decide_all(PLAN_RULES, history)
    assert list(per_epoch) == [2, 4, 6, 8, 10]
    color = [by_name(per_epoch[e]).get("color_accuracy_80_by_epoch_5") for e in per_epoch]
    assert [d.outcome if d else None for d in color] == ["pending", "pending", "pass", None, None]
    assert color[2] is not None and color[2].evidence["judged_at"] == 6
    quality = by_name(per_epoch[8])["quality_8_by_epoch_7"]
    assert quality.outcome == "pass" and quality.evidence["judged_at"] == 8
    assert by_name(per_epoch[10])["production_candidate"].outcome == "marked"


def test_at_rule_on_a_skipped_epoch_says_so_once() -> None:
    rule = Rule("colour_at_5", "color_accuracy", ">=", 80, epoch=5, mode="at", action="alert")
    history = run([0.0] * 4, color=[40, 60, 85, 90], first=2, step=2)  # 2, 4, 6, 8
    assert decide([rule], history, 4)[0].outcome == "pending"
    skipped = decide([rule], history, 6)
    assert len(skipped) == 1 and skipped[0].evidence["reason"] == "epoch_skipped"
    assert "epoch 5 was not evaluated" in skipped[0].message
    assert decide([rule], history, 8) == []


def test_final_unnumbered_file_as_epoch_10() -> None:
    rule = Rule("final_quality", "overall_score", ">=", 8.0, epoch=10, mode="at", action="alert")
    history = run([1.0] * 3, score=[7.0, 7.5, 7.9], first=3, step=3)  # 3, 6, 9
    history.append(EpochRecord(10, {"overall_score": 7.9, "background_match_rate": 1.0}))
    d = decide([rule], history, 10)[0]
    assert d.outcome == "fail" and d.action == "alert" and d.value == 7.9


def test_from_mode_judges_every_epoch_after_start() -> None:
    rule = Rule("colour_from_5", "color_accuracy", ">=", 80, epoch=5, mode="from", action="alert")
    history = run([1.0] * 7, color=[10, 20, 30, 40, 85, 70, 90])
    outcomes = [decide([rule], history, e)[0].outcome for e in range(1, 8)]
    assert outcomes == ["pending"] * 4 + ["pass", "fail", "pass"]


def test_repeated_and_later_calls_are_deterministic() -> None:
    history = run([0.0, 0.75, 0.0, 0.25, 0.9, 0.9])
    first = decide(PLAN_RULES, history[:4], 4)
    assert decide(PLAN_RULES, history[:4], 4) == first
    assert decide(PLAN_RULES, history, 4) == first  # later epochs do not change epoch 4
    assert decide(PLAN_RULES, list(reversed(history)), 4) == first  # order does not matter
    redone = [*history[:4], EpochRecord(3, {"background_match_rate": 0.75, "overall_score": 6.0,
                                            "color_accuracy": 50.0})]
    assert by_name(decide(PLAN_RULES, redone, 3))[STABLE].outcome == "pass"  # latest record wins


def test_decisions_round_trip_through_the_store(tmp_path: Path) -> None:
    history = run([0.0, 0.0, 0.0, 0.25])
    decisions = decide(PLAN_RULES, history, 4)
    with Store(tmp_path / "state.db") as store:
        for d in decisions:
            store.save_decision("run", 4, 7, d)
        stored = store.decisions("run", 4)
    assert [(s.run, s.epoch, s.checkpoint_id) for s in stored] == [("run", 4, 7)] * len(decisions)
    assert [s.decision.criterion for s in stored] == [d.criterion for d in decisions]
    gate = next(s.decision for s in stored if s.decision.criterion == GATE)
    assert (gate.outcome, gate.action, gate.value, gate.threshold) == ("fail", "stop", 0.25, 0.5)
    assert gate.evidence["series"] == [[1, 0.0], [2, 0.0], [3, 0.0], [4, 0.25]]
    assert [s.decision for s in stored] == decisions  # typed from the rule to the database and back
    # the row's dict: the table's columns, evidence parsed and last
    assert list(stored[0].to_dict()) == ["id", "run", "epoch", "checkpoint_id", "criterion", "metric",
                                         "value", "comparison", "threshold", "outcome", "action",
                                         "message", "created_at", "evidence"]


def test_rule_from_config_and_validation() -> None:
    entry = SimpleNamespace(name="g", metric="background_match_rate", comparison=">=",
                            threshold=0.5, epoch=4, mode="by", action="stop")
    assert Rule.from_config(entry) == Rule(
        "g", "background_match_rate", ">=", 0.5, epoch=4, mode="by", action="stop")
    assert Rule.from_config(vars(entry)).threshold == 0.5
    bad = [dict(vars(entry), comparison="=>"), dict(vars(entry), mode="before"),
           dict(vars(entry), action="kill"), dict(vars(entry), action="mark"),
           dict(vars(entry), epoch=None), dict(vars(entry), threshold=math.inf),
           dict(vars(entry), epoch=-1), dict(vars(entry), name="")]
    for b in bad:
        with pytest.raises(ValueError, match="criterion"):
            Rule.from_config(b)
    with pytest.raises(ValueError, match="defined twice"):
        decide([PLAN_RULES[0], PLAN_RULES[0]], [], 1)


def test_plan_rules_are_the_plans_decision_points() -> None:
    summary = {(r.metric, r.comparison, r.threshold, r.epoch, r.mode, r.action) for r in PLAN_RULES}
    assert summary == {
        ("background_match_rate", ">=", 0.5, 4, "by", "stop"),
        ("background_match_rate", ">=", 0.5, None, "oscillation", "alert"),
        ("overall_score", ">=", 8.0, 7, "by", "alert"),
        ("color_accuracy", ">=", 80.0, 5, "by", "alert"),
        ("overall_score", ">=", 8.5, None, "candidate", "mark"),
    }


@pytest.mark.parametrize(("bg", "score", "expected"), [
    ([0.0, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0], [6, 7, 7.5, 8, 8.6, 8.8, 8.4], "success"),
    ([0.0, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0], [6, 7, 7.2, 7.5, 7.9, 7.6, 7.4], "partial"),
    ([0.0, 0.75, 0.0, 1.0, 1.0, 1.0, 1.0], [6, 7, 7.5, 8, 8.6, 8.8, 8.4], "partial"),  # oscillated
    ([0.0, 0.0, 0.0, 0.25], [6, 7, 7.5, 8], "failure"),  # stopped at epoch 4
    ([0.0, 0.5, 0.75, 1.0, 1.0], [3, 4, 5, 6, 6.9], "failure"),  # quality below 7
    ([0.0, 0.25], [6, 7], "pending"),  # the epoch 4 gate is not judged yet
])
def test_verdict(bg: list[float], score: list[float], expected: str) -> None:
    result = verdict(PLAN_RULES, run(bg, score=[float(s) for s in score]),
                     partial_at_least=KEEP_TOKENS_3_PARTIAL)
    assert result.verdict == expected, result.reasons
    assert result.reasons
    if expected != "pending":
        best = max(score)
        assert result.best_score == best and result.best_epoch == score.index(best) + 1


def test_the_verdicts_numbers_come_from_the_plan_and_the_rules_never_from_the_code() -> None:
    low = run([0.0, 0.5, 0.75, 1.0, 1.0], score=[3, 4, 5, 6, 6.9])
    with_plan = verdict(PLAN_RULES, low, partial_at_least=KEEP_TOKENS_3_PARTIAL)
    assert with_plan.verdict == "failure" and with_plan.partial_at_least == 7.0
    # no plan: below the rules' target is partial, and the reasons say why not a failure
    no_plan = verdict(PLAN_RULES, low)
    assert no_plan.verdict == "partial" and no_plan.quality_target == 8.0
    assert no_plan.reasons[0] == "best overall_score 6.9 < target 8"
    assert "sets no partial_at_least" in no_plan.reasons[-1]
    stricter = verdict(PLAN_RULES, low, partial_at_least=6.5)  # another plan, another line
    assert stricter.verdict == "partial"
    # no quality rule: the quality is not judged (no invented 8), the stop rules decide
    gate = [r for r in PLAN_RULES if r.action == "stop"]
    unjudged = verdict(gate, low)
    assert unjudged.verdict == "success" and unjudged.quality_target is None
    assert "quality not judged: no overall_score rule" in unjudged.reasons[0]
    assert verdict(gate, run([0.0, 0.0, 0.0, 0.0])).verdict == "failure"
    # a run judged by no rule at all stays pending, and says so
    candidate_only = [r for r in PLAN_RULES if r.mode == "candidate"]
    nothing = verdict(candidate_only, low)
    assert nothing.verdict == "pending" and "nothing to judge the run by" in nothing.reasons[0]


def test_verdict_lists_candidates_and_failure_reason() -> None:
    success = verdict(PLAN_RULES, run([1.0] * 7, score=[6, 7, 8, 8.7, 8.5, 8.7, 8.1]))
    assert [c["epoch"] for c in success.candidates] == [4, 5, 6]
    assert success.best_epoch == 4  # the earliest of the tied best
    failure = verdict(PLAN_RULES, run([0.0, 0.0, 0.0, 0.0]))
    assert failure.stop_failures[0]["epoch"] == 4 and GATE in failure.reasons[0]
    assert len(failure.reasons) == 1  # one reason per failed rule
    assert verdict(PLAN_RULES, []).verdict == "pending"


values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-5, 20), st.text(max_size=3), st.booleans())
records = st.lists(st.builds(EpochRecord, st.integers(0, 12), st.dictionaries(
    st.sampled_from(["background_match_rate", "overall_score", "color_accuracy", "other"]),
    values)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(history=records, epoch=st.integers(0, 12), later=records)
def test_decide_never_crashes_and_ignores_later_epochs(
        history: list[EpochRecord], epoch: int, later: list[EpochRecord]) -> None:
    decisions = decide(PLAN_RULES, history, epoch)
    assert all(d.outcome in OUTCOMES for d in decisions)
    assert all(d.action == "none" or d.outcome in ("fail", "marked", "cannot_judge")
               for d in decisions)
    shifted = [EpochRecord(r.epoch + epoch + 1, r.metrics) for r in later]
    assert decide(PLAN_RULES, history + shifted, epoch) == decisions
    assert verdict(PLAN_RULES, history).verdict in ("success", "partial", "failure", "pending")


def test_plan_rules_equal_the_configs_defaults() -> None:
    from watcher.config import default_criteria

    assert tuple(Rule.from_config(c) for c in default_criteria()) == PLAN_RULES


def test_decisions_round_trip_through_json_the_state_db_and_a_supabase_row(tmp_path: Path) -> None:
    import json

    from watcher.publish.supabase import epoch_row

    history = run([0.0, 0.75, 0.0, 0.25])
    decisions = decide(PLAN_RULES, history, 4)
    as_json = json.loads(json.dumps([d.to_dict() for d in decisions]))
    assert [Decision.from_dict(d) for d in as_json] == decisions
    row = epoch_row("R", 4, {"aggregate": {}, "checkpoint": {}, "decisions": as_json}, None, "stop")
    assert [Decision.from_dict(d) for d in row["metrics"]["decisions"]] == decisions
    with Store(tmp_path / "state.db") as store:
        for d in decisions:
            store.save_decision("R", 4, None, d)
        stored = {d.decision.criterion: d.decision for d in store.decisions("R", 4)}
    gate = stored[GATE]
    assert gate == by_name(decisions)[GATE] and gate.stops and gate.alert_kind == "stop_decision"
    osc = by_name(decisions)[STABLE]
    assert osc.outcome == "fail" and osc.alert_kind == "oscillation"  # by mode, not by name
