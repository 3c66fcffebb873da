"""Every run judged by its own plan (configs/<run>/plan.toml), or by its rules without one:
today's KEEP_TOKENS_3 report reproduced from its plan file, a second plan with its own
criteria, verdict and next steps, the generic report, the next plan's round trip, refusals."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from test_report_support import (
    KEEP_TOKENS_3_PARAMS,
    NEVER_GREEN,
    ON_TIME,
    OSCILLATING,
    REPO,
    add_run,
    write_config,
)

from watcher.cli import main
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.report import write_report
from watcher.store import Store

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
GOLDEN = Path(__file__).parent / "golden" / "plan"
CONV_PLAN = REPO / "configs" / "SD15_CONV_DIM_8_EXPERIMENT" / "plan.toml"
KT3_FACTS = ("203", "keep_tokens 5", "SD15_PERFECT", "SD15_FINAL_CORRECTED", "8.5+", "3-4")


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {"head": parts[0], **{p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts[1:]}}


def _criteria(section: str) -> list[tuple[str, ...]]:
    """(group, criterion, result) of each row: the targets now come from the rules."""
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| primary")
            or line.startswith("| secondary")]
    return [(r[0], r[1], r[3]) for r in rows]


def _steps(section: str) -> list[tuple[str, ...]]:
    """(title, confidence, kohya changes) of each next experiment."""
    return re.findall(r"^\d+\. \*\*(.+?)\*\* \((\d+%)\):.*Changes: (.*)\.$", section, flags=re.M)


@pytest.mark.parametrize(("golden", "epochs", "status"), [
    ("on_time", ON_TIME, None), ("oscillating", OSCILLATING, None),
    ("never_green", NEVER_GREEN, None), ("never_green_stopped", NEVER_GREEN, "stopped")])
def test_the_keep_tokens_3_plan_file_reproduces_todays_report(
        tmp_path: Path, golden: str, epochs: list[dict], status: str | None) -> None:
    """The goldens are the reports the code wrote before the plan moved to plan.toml."""
    cfg = load_config(write_config(tmp_path))
    assert cfg.plan is not None and cfg.plan.path == REPO / "configs" / RUN / "plan.toml"
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, epochs, KEEP_TOKENS_3_PARAMS, pictures=False)
        if status:
            store.update_run(RUN, status=status)
        now = _sections(write_report(cfg, store).read_text())
    before = _sections((GOLDEN / f"keep_tokens_3_before_{golden}.md").read_text())
    assert now["head"] == before["head"]  # verdict, its reasons, best epoch, candidate
    title = "Success criteria (NEXT_TRAINING_RUN_PLAN.md)"
    assert _criteria(now[title]) == _criteria(before[title]) and len(_criteria(now[title])) == 10
    for same in ("Epochs", "Comparison with the baselines", "Manual review and calibration"):
        assert now[same] == before[same], same
    assert _steps(now["Next experiments"]) == _steps(before["Next experiments"])
    assert [line.split(":")[0] for line in now["Root cause"].splitlines()] == [
        line.split(":")[0] for line in before["Root cause"].splitlines()]
    assert "After epoch 4: Is the background green?" in now["Decision points"]


def _conv_config(tmp_path: Path, conv_epochs: list[dict]) -> object:
    """The conv_dim 8 run beside KEEP_TOKENS_3 in one state store (as on the pod)."""
    kt3 = load_config(write_config(tmp_path))
    with Store(kt3.state_db) as store:
        add_run(store, kt3.run_results_dir.parent, RUN, ON_TIME, KEEP_TOKENS_3_PARAMS, pictures=False)
        add_run(store, kt3.run_results_dir.parent, "SD15_CONV_DIM_8_EXPERIMENT", conv_epochs,
                KEEP_TOKENS_3_PARAMS, pictures=False)
    return load_config(write_config(tmp_path, "SD15_CONV_DIM_8_EXPERIMENT", plan=CONV_PLAN))


def test_the_conv_dim_8_plan_gets_its_own_report_verdict_and_next_steps(tmp_path: Path) -> None:
    better = [{**e, "score": e["score"] + 0.3} for e in ON_TIME]  # beats KEEP_TOKENS_3's 8.6
    cfg = _conv_config(tmp_path, better)
    with Store(cfg.state_db) as store:
        text = write_report(cfg, store).read_text()
    s = _sections(text)
    crit = s["Success criteria (NEXT_TRAINING_RUN_PLAN.md, Next Steps: Accessory Detail Experiment)"]
    assert [r[1] for r in _criteria(crit)] == ["Accessories clearer", "Quality kept",
                                               "Background still on time", "Production ready"]
    assert "✅ met | best 8.9/10 vs 8.6/10 (+0.3)" in crit
    assert "**Verdict: SUCCESS**" in text
    assert "| SD15_KEEP_TOKENS_3_EXPERIMENT | 3 | 9 | 8.6 | success |" in s["Comparison with the baselines"]
    assert "Branch: quality 8+/10 with conv layers." in s["Next experiments"]
    assert ("The plan for this outcome: compare the accessories side by side with "
            "SD15_KEEP_TOKENS_3; production deployment.") in s["Next experiments"]
    assert [t for t, _, _ in _steps(s["Next experiments"])] == [
        "Production deployment of the best epoch", "conv_dim 16 / conv_alpha 8"]
    assert "conv_dim=16" in s["Next experiments"]
    judged = text.split("## Parameters")[0]  # the parameters are the run's own (203 images)
    for fact in ("203", "keep_tokens 5", "SD15_PERFECT", "SD15_FINAL_CORRECTED"):
        assert fact not in judged, fact

    worse = _conv_config(tmp_path / "b", NEVER_GREEN)
    with Store(worse.state_db) as store:
        text = write_report(worse, store).read_text()
    assert "**Verdict: FAILURE**" in text and "Branch: conv layers cost the background." in text
    assert "The plan for this outcome" not in text  # that branch lists no steps
    assert "Drop the conv layers" in text and "⏳ pending | best 5.0/10 vs 8.6/10 (-3.6)" in text


def _own_rules_config(tmp_path: Path) -> Path:
    config = write_config(tmp_path, "LR5E5_LONGER_RUN")
    config.write_text(config.read_text() + """
[[criteria]]
name = "bg_three_quarters_by_epoch_2"
metric = "background_match_rate"
threshold = 0.75
epoch = 2
action = "alert"

[[criteria]]
name = "quality_7_by_epoch_3"
metric = "overall_score"
threshold = 7.0
epoch = 3
action = "alert"
""")
    return config


def test_a_run_without_a_plan_is_reported_by_its_own_rules(tmp_path: Path) -> None:
    cfg = load_config(_own_rules_config(tmp_path))
    assert cfg.plan is None
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, cfg.run.name, OSCILLATING, KEEP_TOKENS_3_PARAMS,
                pictures=False)
        text = write_report(cfg, store).read_text()
    s = _sections(text)
    assert _criteria(s["Success criteria (the run's rules)"]) == [
        ("| primary", "bg_three_quarters_by_epoch_2", "❌ not met"),
        ("| primary", "quality_7_by_epoch_3", "✅ met")]
    assert "No baseline: a run without a plan has none." in s["Comparison with the baselines"]
    steps = _steps(s["Next experiments"])
    assert ("keep_tokens 5", "40%", "`keep_tokens = 5`") in steps  # 3 + 2, from its own params
    assert any(t.startswith("Learning rate 5e-05") for t, _, _ in steps)  # it oscillated
    for fact in KT3_FACTS:
        assert fact not in s["Success criteria (the run's rules)"] + s["Comparison with the baselines"]
    assert "203" not in s["Next experiments"] and "SD15_PERFECT" not in text


def test_plan_show_prints_the_rules_of_a_run_without_a_plan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "show", "-c", str(_own_rules_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run LR5E5_LONGER_RUN: no plan")
    assert "criterion quality_7_by_epoch_3: overall_score >= 7 by epoch 3 -> alert" in out


def test_hypotheses_write_the_next_plan_and_it_loads_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, OSCILLATING, KEEP_TOKENS_3_PARAMS, pictures=False)
    out, plan_out = tmp_path / "next.toml", tmp_path / "next-plan.toml"
    assert main(["analyze", "hypotheses", "-c", str(config), "--out", str(out),
                 "--plan-out", str(plan_out)]) == 0
    assert "wrote " + str(plan_out) in capsys.readouterr().out
    name = "SD15_KEEP_TOKENS_3_EXPERIMENT_LEARNING_RATE_5E-5"
    nxt = write_config(tmp_path, name, plan=plan_out)
    loaded = load_config(nxt)
    plan = loaded.plan
    assert plan.plan.run == name and plan.plan.tries == {"learning_rate": 5e-5}
    assert plan.plan.goal.startswith("Learning rate 5e-5: ")
    assert [b.name for b in plan.baselines] == [RUN, "SD15_FINAL_CORRECTED_CAPTIONS", "SD15_PERFECT"]
    beat = plan.criteria[-1]
    assert (beat.check, beat.baseline, beat.within) == ("near_baseline", RUN, 0.0)
    assert "learning_rate_5e-5" not in [s.name for s in plan.next_steps]  # the chosen one is spent
    assert len(plan.next_steps) == 7 and len(plan.decision_points) == 2
    assert main(["plan", "show", "-c", str(nxt)]) == 0
    assert f"baseline {RUN} (the run before this one)" in capsys.readouterr().out


def _bad(tmp_path: Path, edit: tuple[str, str] | None, append: str = "") -> Path:
    text = (REPO / "configs" / RUN / "plan.toml").read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    plan = tmp_path / "plan.toml"
    plan.write_text(text + append)
    return write_config(tmp_path, plan=plan)


@pytest.mark.parametrize(("edit", "append", "expect"), [
    (('rule = "quality_8_by_epoch_7"', 'rule = "quality_9_by_epoch_7"'), "",
     r"plan\.toml:\d+: criteria\[2\]\.rule: no rule 'quality_9_by_epoch_7'"),
    (('max_drop = 0.5', 'max_drop = 0.5\ncolour = "x"'), "", r"plan\.toml:\d+: criteria\[4\]\.colour: unknown key"),
    (('metric = "overall_score"\nmax_drop', 'metric = "overall_scor"\nmax_drop'), "",
     r"plan\.toml:\d+: criteria\[4\]\.metric: "),
    (('at_least = 8.0', 'at_least = 80.0'), "",
     r"plan\.toml:\d+: decision_points\[1\]\.at_least: 80 is outside overall_score's range \(1\.\.10\)"),
    (('run = "SD15_KEEP_TOKENS_3_EXPERIMENT"', 'run = "LR5E5_LONGER_RUN"'), "",
     r"plan\.toml:\d+: plan\.run: this plan is for run 'LR5E5_LONGER_RUN'"),
    (None, "\n[[baselines]]\nname = \"SD15_NOWHERE\"\n", r"plan\.toml:\d+: baselines\[2\]: baseline 'SD15_NOWHERE': no file"),
    (None, "\n[[criteria]\n", r"plan\.toml:\d+: invalid TOML"),
    (('partial_at_least = 7.0', 'partial_at_least = 11.0'), "",
     r"plan\.toml:\d+: plan\.partial_at_least: 11 is outside overall_score's range \(1\.\.10\)"),
    (('partial_at_least = 7.0', 'partial_at_least = 9.0'), "",
     r"plan\.toml:\d+: plan\.partial_at_least: 9 is above the quality target 8 of rule "
     r"'quality_8_by_epoch_7'"),
])
def test_a_bad_plan_is_refused_with_its_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str] | None,
        append: str, expect: str) -> None:
    config = _bad(tmp_path, edit, append)
    with pytest.raises(ConfigError, match=expect):
        load_config(config)
    assert main(["plan", "show", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(expect, err), err


def test_a_supabase_baseline_while_supabase_is_down_is_named_and_the_report_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on: Supabase is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SUPABASE_KEY", "service-key")
    plan = tmp_path / "plan.toml"
    plan.write_text((REPO / "configs" / RUN / "plan.toml").read_text().replace(
        'name = "SD15_PERFECT"\nrole = "production baseline, the target to beat"\nsource = "file"',
        'name = "SD15_PERFECT"\nrole = "production baseline, the target to beat"\nsource = "supabase"'))
    cfg = load_config(write_config(tmp_path, plan=plan))  # Supabase is not asked at load
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, ON_TIME, KEEP_TOKENS_3_PARAMS, pictures=False)
        text = write_report(cfg, store).read_text()
    section = _sections(text)["Comparison with the baselines"]
    assert "**not available**: baseline SD15_PERFECT is only in Supabase, which cannot be read now" in section
    assert "| SD15_FINAL_CORRECTED_CAPTIONS |" in section and "| SD15_PERFECT |" not in section
    assert "➖ not measurable | baseline SD15_PERFECT not available" in text
    assert "service-key" not in text


def test_the_readme_plan_loads_and_judges_a_run(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Your run's plan", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    plan = tmp_path / "plan.toml"
    plan.write_text(block)
    kt3 = load_config(write_config(tmp_path))
    with Store(kt3.state_db) as store:
        add_run(store, kt3.run_results_dir.parent, "MY_PREVIOUS_RUN", ON_TIME, KEEP_TOKENS_3_PARAMS,
                pictures=False)
        add_run(store, kt3.run_results_dir.parent, "MY_RUN", NEVER_GREEN, KEEP_TOKENS_3_PARAMS,
                pictures=False)
    cfg = load_config(write_config(tmp_path, "MY_RUN", plan=plan))
    with Store(cfg.state_db) as store:
        text = write_report(cfg, store).read_text()
    assert "| primary | Early background | background_match_rate >= 0.5 by epoch 4 | ❌ not met |" in text
    assert "Branch: background wrong or late." in text and "**keep_tokens 5** (35%)" in text
    assert "| MY_PREVIOUS_RUN | 3 | 9 | 8.6 | success |" in text


def test_a_store_baseline_must_be_in_the_store_and_a_summary_baseline_is_compared(
        tmp_path: Path) -> None:
    no_run = write_config(tmp_path / "a", "SD15_CONV_DIM_8_EXPERIMENT", plan=CONV_PLAN)
    with pytest.raises(ConfigError, match=r"plan\.toml:\d+: baselines\[0\]: baseline "
                       r"'SD15_KEEP_TOKENS_3_EXPERIMENT': not in the state store"):
        load_config(no_run)
    plan = tmp_path / "plan.toml"
    plan.write_text(CONV_PLAN.read_text().replace(
        'source = "store"     # the state store this run\'s daemon uses (all runs of a host share it)',
        'source = "summary"\nsummary = { verdict = "success", best_epoch = 9, best_score = 8.6, '
        'first_green_epoch = 3, notes = "from the team wiki" }'))
    cfg = load_config(write_config(tmp_path / "b", "SD15_CONV_DIM_8_EXPERIMENT", plan=plan))
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, cfg.run.name, ON_TIME, KEEP_TOKENS_3_PARAMS,
                pictures=False)
        text = write_report(cfg, store).read_text()
    assert "| SD15_KEEP_TOKENS_3_EXPERIMENT | 3 | 9 | 8.6 | success |" in text
    assert "_from the team wiki_" in text and "✅ met | best 8.6/10 vs 8.6/10 (+0.0)" in text


def test_the_run_page_judges_by_the_runs_own_plan(tmp_path: Path) -> None:
    from watcher.report.history import load_run
    from watcher.serve import data

    cfg = _conv_config(tmp_path, ON_TIME)
    src = data.RunSource(cfg.run.name, cfg.path, cfg)
    with Store(cfg.state_db) as store:
        run = load_run(store, cfg.run.name)
    rows = data.plan_table(run, src)
    assert [r.name for r in rows] == ["Accessories clearer", "Quality kept",
                                      "Background still on time", "Production ready"]
    assert rows[1].status == "met" and "vs 8.6/10" in rows[1].evidence


def test_a_run_without_a_plan_also_writes_a_next_plan_that_loads_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _own_rules_config(tmp_path)
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, cfg.run.name, OSCILLATING, KEEP_TOKENS_3_PARAMS,
                pictures=False)
    plan_out = tmp_path / "next-plan.toml"
    assert main(["analyze", "hypotheses", "-c", str(config), "--plan-out", str(plan_out)]) == 0
    out = capsys.readouterr().out  # its own rules hold no oscillation rule: a success for them
    assert "branch: success, no plan" in out and "1. Learning rate 5e-05" in out
    nxt = tmp_path / "next.toml"
    nxt.write_text(config.read_text().replace('name = "LR5E5_LONGER_RUN"',
                                              'name = "LR5E5_LONGER_RUN_LEARNING_RATE_HALF"\nplan = "next-plan.toml"'))
    plan = load_config(nxt).plan
    assert plan.plan.tries == {"learning_rate": 5e-5}
    assert [c.rule or c.check for c in plan.criteria] == [
        "bg_three_quarters_by_epoch_2", "quality_7_by_epoch_3", "near_baseline"]
    assert [(b.name, b.source) for b in plan.baselines] == [("LR5E5_LONGER_RUN", "store")]


def test_the_default_criteria_are_data_and_a_broken_file_names_itself(tmp_path: Path) -> None:
    from watcher.rules import DEFAULT_CRITERIA_FILE, PLAN_RULES, _default_rules

    assert DEFAULT_CRITERIA_FILE == REPO / "configs" / "default_criteria.toml"
    assert _default_rules() == PLAN_RULES and len(PLAN_RULES) == 5
    bad = tmp_path / "default_criteria.toml"
    bad.write_text('[[criteria]]\nname = "x"\nmetric = "overall_score"\nthreshold = 1\nmode = "sometimes"\n')
    with pytest.raises(RuntimeError, match=r"default_criteria\.toml: cannot read the default criteria: .*mode"):
        _default_rules(bad)


def test_the_demo_is_judged_by_the_plan_it_imitates(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`demo --setup-only` writes the KEEP_TOKENS_3 plan under the demo's run name, so the
    demo's report and run page read that plan's criteria, not the generic ones."""
    import shutil

    from watcher.commands.demo import setup

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny-sd")  # setup reuses a built model
    cfg = load_config(setup(tmp_path))
    assert cfg.plan is not None and cfg.plan.plan.run == cfg.run.name == "DEMO_KEEP_TOKENS_3"
    shipped = load_config(REPO / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "watcher.toml").plan
    assert shipped is not None
    assert [c.name for c in cfg.plan.criteria] == [c.name for c in shipped.criteria]
    assert {r.name for r in cfg.rules()} >= {c.rule for c in cfg.plan.criteria if c.rule}
