"""`status` shows only the sinks that are enabled; outcomes and messages agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_support import KEEP_TOKENS_3_PARAMS, ON_TIME, add_run, write_config

from watcher.cli import main
from watcher.config import load_config
from watcher.epoch.decide import EpochRecord, decide
from watcher.rules import PLAN_RULES
from watcher.store import Store

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"


def _status(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert main(["status", "-c", str(config), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert main(["status", "-c", str(config)]) == 0
    return js, capsys.readouterr().out


def test_status_shows_only_enabled_sinks(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("EPOCHWATCH_ALERT_URLS", raising=False)
    config = write_config(tmp_path)
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, ON_TIME[:3], KEEP_TOKENS_3_PARAMS)
        store.enqueue(RUN, "supabase", "row:1", {"table": "epoch_evaluations", "row": {}})
        store.enqueue(RUN, "alert", "a:1", {"title": "x"})
    js, text = _status(config, capsys)  # no daemon record: this environment has no sink
    assert js["sinks"] == {"supabase": False, "alerts": False, "git": False}
    assert js["outbox"] == {} and "outbox    no sink enabled (git commits only)" in text
    with Store(cfg.state_db) as store:
        store.set_sinks(RUN, {"supabase": True, "alerts": False, "git": False})
    js, text = _status(config, capsys)
    assert js["outbox"] == {"supabase": {"pending": 1}}
    assert "outbox    supabase 1 pending" in text and "alert" not in text.split("outbox")[1]


def test_a_candidate_rule_below_its_mark_is_unmarked_not_passed() -> None:
    rule = next(r for r in PLAN_RULES if r.mode == "candidate")
    [below] = decide([rule], [EpochRecord(1, {"overall_score": 7.0})], 1)
    [above] = decide([rule], [EpochRecord(1, {"overall_score": 9.0})], 1)
    assert (below.outcome, below.marked, below.stops, below.alert_kind) == ("unmarked", False, False, None)
    assert below.message.startswith("production_candidate: below the production-candidate mark: overall_score 7 < 8.5")
    assert (above.outcome, above.marked) == ("marked", True)
    assert above.message.startswith("production_candidate: production candidate: overall_score 9 >= 8.5")
