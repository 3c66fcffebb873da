"""Cross-run analysis on stored runs with known outcomes, the two baselines included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_report_support import (
    KEEP_TOKENS_3_PARAMS,
    KOHYA,
    NEVER_GREEN,
    ON_TIME,
    OSCILLATING,
    add_run,
    write_config,
)

from watcher.cli import main
from watcher.config import load_config
from watcher.plan import load_plan
from watcher.report.analysis import correlations, outcomes, rank, spearman
from watcher.report.baselines import BaselineError, load_baseline, load_baselines
from watcher.report.history import load_run, load_store
from watcher.report.hypotheses import next_experiments
from watcher.report.kohyaedit import edit_kohya_config, flatten
from watcher.report.rootcause import on_time_epoch
from watcher.report.rootcause import root_cause as root_cause_by
from watcher.rules import PLAN_RULES
from watcher.store import Store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
PLAN = Path(__file__).resolve().parent.parent / "configs" / RUN / "plan.toml"


def root_cause(run):
    """Findings as the KEEP_TOKENS_3 rules see them (background due by their epoch 4)."""
    return root_cause_by(run, on_time_epoch(PLAN_RULES))


def hypotheses(run, findings, kohya, baselines):
    """(branch, next steps) from the KEEP_TOKENS_3 plan file."""
    plan = load_plan(PLAN, run=None, rules=list(PLAN_RULES))
    return next_experiments(run, findings, kohya, PLAN_RULES, plan, baselines)


def _baseline(name: str):
    return next(b for b in load_baselines() if b.name == name)


def _stored(tmp_path: Path, epochs: list[dict], name: str = RUN, params: dict | None = None):
    with Store(tmp_path / "state.db") as store:
        add_run(store, tmp_path / "results", name, epochs, params or KEEP_TOKENS_3_PARAMS, pictures=False)
        return load_run(store, name)


def _kinds(findings) -> list[str]:
    return [f.kind for f in findings]


# ---- baselines -----------------------------------------------------------------------------
def test_baselines_hold_what_the_plan_says() -> None:
    final, perfect = _baseline("SD15_FINAL_CORRECTED_CAPTIONS"), _baseline("SD15_PERFECT")
    assert final.best() == (6, 7.3) and final.value(7, "overall_score") == 7.0
    assert final.first_green() == 7 and all(not final.green()[e] for e in range(1, 7))
    assert final.flat_params()["keep_tokens"] == 1 and final.flat_params()["caption_dropout_rate"] == 0.0
    assert perfect.best() == (7, 9.0)
    assert outcomes(perfect)["first_green_epoch"] is None  # the plan does not say: unknown
    assert outcomes(perfect)["verdict"] == "success" and outcomes(final)["verdict"] == "partial"


def test_a_bad_baseline_file_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "BAD.toml"
    bad.write_text('[run]\nname = "X"\n[[epochs]]\nepoch = 1\noverall_scor = 7.0\n')
    with pytest.raises(BaselineError, match=r"BAD.toml: epochs\[0\].overall_scor: unknown metric"):
        load_baseline(bad)
    bad.write_text("[run\n")
    with pytest.raises(BaselineError, match="BAD.toml: cannot read baseline"):
        load_baseline(bad)


# ---- root cause ------------------------------------------------------------------------------
def test_root_cause_of_the_final_corrected_baseline() -> None:
    findings = {f.kind: f for f in root_cause(_baseline("SD15_FINAL_CORRECTED_CAPTIONS"))}
    assert set(findings) == {"background_late", "quality_traded_for_background"}
    assert "first right at epoch 7" in findings["background_late"].message
    traded = findings["quality_traded_for_background"]
    assert traded.epochs == (6, 7) and "score 7.3->7.0" in traded.message


def test_root_cause_of_an_oscillating_run(tmp_path: Path) -> None:
    findings = root_cause(_stored(tmp_path, OSCILLATING))
    osc = [f for f in findings if f.kind == "oscillation"]
    assert [f.epochs for f in osc] == [(4, 5), (7, 8)]
    assert "background_on_time" in _kinds(findings)
    assert "quality_traded_for_background" in _kinds(findings)  # 5->6: bg 0.25->0.75, 7.3->7.1


def test_root_cause_of_a_run_that_never_got_the_background(tmp_path: Path) -> None:
    findings = root_cause(_stored(tmp_path, NEVER_GREEN))
    assert findings[0].kind == "background_never" and findings[0].severity == "critical"
    assert "mostly #800080" in findings[0].message
    assert "stopped" in _kinds(findings)  # the epoch 4 stop decision in the store


def test_root_cause_colour_drift_and_style_loss(tmp_path: Path) -> None:
    epochs = [{"epoch": e, "rate": 1.0, "score": 7.0, "color": c, "style": s, "unique_colors": u}
              for e, c, s, u in [(1, 70.0, 85.0, 14), (2, 84.0, 86.0, 16), (3, 79.0, 80.0, 20),
                                 (4, 68.0, 71.0, 48), (5, 66.0, 45.0, 60)]]
    findings = {f.kind: f for f in root_cause(_stored(tmp_path, epochs))}
    assert findings["color_drift"].epochs == (2, 5)
    assert findings["style_loss"].epochs == (2, 5)
    assert findings["style_poor"].epochs == (5,)
    assert findings["palette_growth"].epochs == (1, 5)
    assert findings["plateau"].epochs == (3, 4, 5)


def test_root_cause_of_a_healthy_run_has_no_warnings(tmp_path: Path) -> None:
    findings = root_cause(_stored(tmp_path, ON_TIME))
    assert {f.severity for f in findings} == {"info"}


# ---- correlations ----------------------------------------------------------------------------
def test_spearman_ranks() -> None:
    assert rank([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def _sweep(tmp_path: Path) -> list:
    """Five stored runs: more keep_tokens, earlier green background (a known outcome)."""
    runs = []
    for kt, first in [(2, 6), (3, 4), (4, 3), (5, 2), (6, 1)]:
        params = {**KEEP_TOKENS_3_PARAMS, "data": {**KEEP_TOKENS_3_PARAMS["data"], "keep_tokens": kt}}
        epochs = [{"epoch": e, "rate": 1.0 if e >= first else 0.0, "score": 6.0 + 0.2 * e}
                  for e in range(1, 8)]
        runs.append(_stored(tmp_path / f"kt{kt}", epochs, f"KT{kt}", params))
    return runs


def test_correlations_find_a_known_relation(tmp_path: Path) -> None:
    runs = _sweep(tmp_path) + load_baselines()
    rows = {(c.parameter, c.outcome): c for c in correlations(runs)}
    c = rows[("keep_tokens", "first_green_epoch")]
    # five stored runs + SD15_FINAL_CORRECTED_CAPTIONS (keep_tokens 1, green at 7)
    assert c.n == 6 and c.rho == pytest.approx(-1.0) and c.warning == ""
    assert "SD15_FINAL_CORRECTED_CAPTIONS" in c.runs and "SD15_PERFECT" not in c.runs
    assert "does not vary" in rows[("network_dim", "best_score")].warning


def test_correlations_warn_with_too_few_runs(tmp_path: Path) -> None:
    runs = [_stored(tmp_path, OSCILLATING)] + load_baselines()
    rows = {(c.parameter, c.outcome): c for c in correlations(runs)}
    c = rows[("keep_tokens", "first_green_epoch")]
    assert (c.n, c.rho) == (2, pytest.approx(-1.0))  # 3 (this run) vs 7 (keep_tokens 1)
    assert "too few runs (n=2 < 5)" in c.warning
    version = rows[("caption_version", "best_score")]
    assert version.n == 3 and "'simple (fewer hex codes)'=1" in version.encoding


def test_never_green_ranks_below_every_green_run(tmp_path: Path) -> None:
    o = outcomes(_stored(tmp_path, NEVER_GREEN))
    assert (o["first_green_epoch"], o["first_green_censored"], o["verdict"]) == (5, True, "failure")


def test_correlations_command_reads_every_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sweep(tmp_path)
    args = ["analyze", "correlations"]
    for kt in (2, 3, 4, 5, 6):
        args += ["--store", str(tmp_path / f"kt{kt}" / "state.db")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("7 run(s): KT2 (7 epochs)")
    line = next(x for x in out.splitlines() if x.startswith("keep_tokens") and "first_green_epoch" in x)
    assert line.split()[2:4] == ["-1.00", "6"]
    assert main(["analyze", "correlations", "--store", str(tmp_path / "missing.db")]) == 2
    assert "no state database at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_load_store_reads_every_run(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        add_run(store, tmp_path, "A", ON_TIME[:3], pictures=False)
        add_run(store, tmp_path, "B", NEVER_GREEN, pictures=False)
    assert [r.name for r in load_store(tmp_path / "state.db")] == ["A", "B"]


# ---- hypotheses and --write-config -------------------------------------------------------------
def _kohya() -> dict:
    return flatten(tomllib.loads(KOHYA.read_text()))


def test_hypotheses_when_the_background_never_came(tmp_path: Path) -> None:
    run = _stored(tmp_path, NEVER_GREEN)
    findings = root_cause(run)
    which, items = hypotheses(run, findings, _kohya(), load_baselines())
    assert which == "background wrong or late"
    names = [h.name for h in items]
    assert set(names) == {"simplified_captions", "keep_tokens_5", "caption_restructure", "baseline_return"}
    assert names[0] == "simplified_captions"  # SD15_PERFECT's simpler captions reached 9/10
    kt5 = next(h for h in items if h.name == "keep_tokens_5")
    assert kt5.changes == {"keep_tokens": 5} and 0 < kt5.confidence < items[0].confidence


def test_hypotheses_for_a_partial_oscillating_run(tmp_path: Path) -> None:
    run = _stored(tmp_path, OSCILLATING)
    _, items = hypotheses(run, root_cause(run), _kohya(), load_baselines())
    assert items[0].name == "learning_rate_5e-5" and items[0].changes == {"learning_rate": 5e-5}
    assert "unstable: oscillation" in items[0].rationale
    names = [h.name for h in items]
    assert {"epochs_15", "dataset_expansion", "conv_dim_8"} <= set(names)
    conv = next(h for h in items if h.name == "conv_dim_8")
    assert conv.confidence == pytest.approx(0.45)  # the plan's own figure
    assert conv.changes == {"network_args": ["conv_dim=8", "conv_alpha=4"]}


def test_hypotheses_for_a_successful_run(tmp_path: Path) -> None:
    run = _stored(tmp_path, ON_TIME)
    _, items = hypotheses(run, root_cause(run), _kohya(), load_baselines())
    assert [h.name for h in items] == ["dataset_expansion", "conv_dim_8"]


def _write_next(tmp_path: Path, epochs: list[dict], capsys: pytest.CaptureFixture[str]) -> tuple[dict, dict, str]:
    config = write_config(tmp_path)
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, epochs, KEEP_TOKENS_3_PARAMS, pictures=False)
    out = tmp_path / "next" / "next.toml"
    assert main(["analyze", "hypotheses", "--config", str(config), "--write-config", str(out)]) == 0
    before = flatten(tomllib.loads((tmp_path / "kohya.toml").read_text()))
    after = flatten(tomllib.loads(out.read_text()))
    return before, after, capsys.readouterr().out


def _diff(before: dict, after: dict) -> dict:
    return {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def test_write_config_changes_only_keep_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after, out = _write_next(tmp_path, NEVER_GREEN, capsys)
    assert _diff(before, after) == {"keep_tokens": (3, 5)}
    assert "skipped, no kohya change: Simplified captions" in out and "wrote" in out
    text = (tmp_path / "next" / "next.toml").read_text()
    assert "keep_tokens = 5  # was 3" in text
    assert text.count("\n") == (tmp_path / "kohya.toml").read_text().count("\n") + 3  # header only


def test_write_config_changes_only_the_learning_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after, _ = _write_next(tmp_path, OSCILLATING, capsys)
    assert _diff(before, after) == {"learning_rate": (1e-4, 5e-5)}


def test_write_config_adds_network_args(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after, _ = _write_next(tmp_path, ON_TIME, capsys)
    assert _diff(before, after) == {"network_args": (None, ["conv_dim=8", "conv_alpha=4"])}
    data = tomllib.loads((tmp_path / "next" / "next.toml").read_text())
    assert data["additional_network_arguments"]["network_args"] == ["conv_dim=8", "conv_alpha=4"]


def test_write_config_refuses_to_overwrite_the_runs_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, NEVER_GREEN, KEEP_TOKENS_3_PARAMS, pictures=False)
    original = (tmp_path / "kohya.toml").read_text()
    assert main(["analyze", "hypotheses", "--config", str(config),
                 "--write-config", str(tmp_path / "kohya.toml")]) == 2
    assert "would overwrite this run's own kohya config" in capsys.readouterr().err
    assert (tmp_path / "kohya.toml").read_text() == original


def test_edit_falls_back_to_a_full_rewrite_for_multiline_values() -> None:
    text = ('[additional_network_arguments]\nnetwork_dim = 32\nnetwork_args = [\n  "conv_dim=4",\n'
            '  "conv_alpha=1",\n]\n\n[training_arguments]\nmax_train_epochs = 10  # ten\n')
    changes = {"network_args": ["conv_dim=8", "conv_alpha=4"], "max_train_epochs": 15}
    edited = edit_kohya_config(text, changes, "test", ["header"])
    assert edited.startswith("# header\n")
    assert flatten(tomllib.loads(edited)) == {"network_dim": 32, **changes}


def test_root_cause_and_hypotheses_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["analyze", "root-cause", "--config", str(config)]) == 2
    assert "no state database" in capsys.readouterr().err
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, OSCILLATING, KEEP_TOKENS_3_PARAMS, pictures=False)
    assert main(["analyze", "root-cause", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[warning] oscillation: background right at epoch 4 (rate 0.75), wrong again at epoch 5" in out
    assert main(["analyze", "hypotheses", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "branch: quality below 8/10" in out and "1. Learning rate 5e-5" in out


def test_a_run_that_never_got_the_background_ranks_after_a_late_one(tmp_path: Path) -> None:
    # never green by epoch 4 (keep_tokens 3) vs green at 7 (keep_tokens 1): the late one is better
    runs = [_stored(tmp_path, NEVER_GREEN), _baseline("SD15_FINAL_CORRECTED_CAPTIONS")]
    rows = {(c.parameter, c.outcome): c for c in correlations(runs)}
    assert rows[("keep_tokens", "first_green_epoch")].rho == pytest.approx(1.0)


def test_each_stored_run_is_judged_by_its_own_recorded_rules(tmp_path: Path) -> None:
    from watcher.epoch.path import EpochPath
    from watcher.report.analysis import DEFAULT_RULES_NOTE, render_correlations
    from watcher.testing import write_watch_config

    own = """
[[criteria]]
name = "quality_9_by_epoch_5"
metric = "overall_score"
threshold = 9.0
epoch = 5
action = "stop"
"""
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="OWN", criteria=own)
    cfg = load_config(config)
    EpochPath.open(cfg).close()  # a daemon's start records what the run is judged by
    with Store(cfg.state_db) as store:
        recorded = store.judged_by("OWN")
        assert recorded is not None and [r.name for r in recorded[0]] == ["quality_9_by_epoch_5"]
        add_run(store, tmp_path / "results", "OWN", ON_TIME, KEEP_TOKENS_3_PARAMS, pictures=False)
        add_run(store, tmp_path / "results", "OLD", ON_TIME, KEEP_TOKENS_3_PARAMS, pictures=False)
        assert store.judged_by("OLD") is None  # stored before the rules were recorded
    runs = {r.name: r for r in load_store(cfg.state_db)}
    mine, old = outcomes(runs["OWN"]), outcomes(runs["OLD"])
    # the same epochs: a failure by its own 9-by-epoch-5 stop rule, a success by the defaults
    assert (mine["verdict"], mine["judged_by"]) == ("failure", "own rules")
    assert (old["verdict"], old["judged_by"]) == ("success", DEFAULT_RULES_NOTE)
    text = render_correlations(list(runs.values()), correlations(list(runs.values())))
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("OWN", "OLD"))}
    assert rows["OWN"].endswith("failure") and rows["OLD"].endswith("success*")
    assert f"(*: verdict by {DEFAULT_RULES_NOTE})" in text
