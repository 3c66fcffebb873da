"""`epochwatch runs` over local state stores, and the host description every row carries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.publish import host as host_mod
from watcher.report.runs import load_store_records, summary
from watcher.store import Store
from watcher.testing import write_watch_config


def _decision(criterion: str, outcome: str, action: str) -> dict[str, object]:
    return {"criterion": criterion, "metric": "background_match_rate", "value": 0.0,
            "comparison": ">=", "threshold": 0.5, "outcome": outcome, "action": action,
            "message": f"{criterion} {outcome}", "evidence": {}}


def _store(path: Path, run: str, epochs: dict[int, tuple[float, float, list[dict[str, object]]]],
           status: str = "running", verdict: str | None = None) -> None:
    """A state database as the daemon leaves it: epoch -> (bg rate, overall, decisions)."""
    with Store(path) as store:
        store.ensure_run(run, params={"data": {"keep_tokens": 3}})
        for epoch, (rate, score, decisions) in epochs.items():
            ck, _ = store.add_checkpoint(run, f"/out/{run}-{epoch:06d}.safetensors", epoch,
                                         f"{epoch:064x}", 10, None, {})
            metrics = {"aggregate": {"background_match_rate": rate, "overall_score": score},
                       "decisions": decisions}
            store.save_evaluation(ck, epoch, metrics, f"/results/runs/{run}/epoch-{epoch:03d}")
        store.update_run(run, status=status, verdict=verdict)


def test_runs_lists_local_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = "green_background_by_epoch_4"
    _store(tmp_path / "a.db", "RUN_STOPPING", {
        1: (0.0, 5.0, [_decision(gate, "pending", "stop")]),
        2: (0.0, 6.0, [_decision("osc", "fail", "alert")]),
        3: (0.0, 5.5, [_decision(gate, "fail", "stop")]),
        4: (1.0, 7.0, [_decision(gate, "pass", "stop")]),
    })
    _store(tmp_path / "b.db", "RUN_ALERTING", {
        1: (1.0, 8.0, []), 2: (0.0, 8.0, [_decision("osc", "fail", "alert")])})
    _store(tmp_path / "c.db", "RUN_DONE", {1: (1.0, 9.0, [])}, status="finished", verdict="success")
    with Store(tmp_path / "c.db") as store:  # this one's daemon recorded its host
        host_mod.record(store.conn, {"host": "pod-7", "gpu_name": "NVIDIA H200",
                                     "gpu_memory_mb": 143771, "results_location": "pod-7:/r",
                                     "results_remote": "https://example.org/results.git"})
    records = [r for p in ("a", "b", "c") for r in load_store_records(tmp_path / f"{p}.db")]
    rows = {r.history.name: summary(r) for r in records}
    assert rows["RUN_STOPPING"]["decision"] == "stop at epoch 3"  # a stop stands
    assert rows["RUN_STOPPING"]["first_green_epoch"] == 4
    assert (rows["RUN_STOPPING"]["best_epoch"], rows["RUN_STOPPING"]["best_score"]) == (4, 7.0)
    assert rows["RUN_ALERTING"]["decision"] == "alert (epoch 2)"
    assert rows["RUN_ALERTING"]["best_epoch"] == 1  # the earliest of equal scores
    assert rows["RUN_DONE"]["decision"] == "success" and rows["RUN_DONE"]["state"] == "finished"
    assert rows["RUN_DONE"]["results"] == "pod-7:/r (remote https://example.org/results.git)"
    assert rows["RUN_STOPPING"]["host"] is None  # a store from before hosts were recorded

    # The command, through --config: a config locates its store.
    (tmp_path / "run" / "state").mkdir(parents=True)
    config = write_watch_config(tmp_path / "run", tmp_path / "model", name="RUN_DONE")
    os.replace(tmp_path / "c.db", tmp_path / "run" / "state" / "state.db")
    assert main(["runs", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:9] == ["RUN_DONE", "finished", "1", "1", "1", "9.00", "success",
                                    "pod-7", "NVIDIA"]
    assert "H200 140 GiB" in lines[1]
    assert main(["runs", "--config", str(config), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"]
    assert row["gpu_memory_mb"] == 143771 and row["epochs_evaluated"] == 1


def test_runs_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    assert main(["runs"]) == 2
    assert capsys.readouterr().err.strip() == (
        "epochwatch runs: give --config FILE (or set SUPABASE_URL and a key for --source supabase)")
    config = write_watch_config(tmp_path, tmp_path / "model", name="NEVER_RAN")
    assert main(["runs", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("epochwatch runs: no state database at ") and "\n" not in err
    assert main(["runs", "--source", "supabase"]) == 2
    assert "Supabase is not configured" in capsys.readouterr().err


def test_runs_never_imports_torch(tmp_path: Path) -> None:
    _store(tmp_path / "state" / "state.db", "RUN_X", {1: (1.0, 8.0, [])})
    config = write_watch_config(tmp_path, tmp_path / "model", name="RUN_X")
    code = ("import sys; from watcher.cli import main; rc = main(['runs', '--config', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "RUN_X" in proc.stdout


def test_host_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert host_mod.gpu_info("cpu") == (host_mod.CPU_ONLY, None)
    # A GPU host: nvidia-smi answers (a stand-in script printing what the real one prints).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\necho 'NVIDIA H200, 143771'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert host_mod.gpu_info("cuda:1") == ("NVIDIA H200", 143771)
    assert "--id=1" in (bin_dir / "args").read_text()
    smi.write_text("#!/bin/sh\nexit 9\n")  # a broken driver: no GPU known, no crash
    assert host_mod.gpu_info("auto") == (host_mod.CPU_ONLY, None)

    repo = tmp_path / "results"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin",
                    "https://user:ghp_secret123@github.com/team/results.git"], check=True)
    monkeypatch.setenv("EPOCHWATCH_HOST", "pod-9")
    info = host_mod.describe("cpu", repo / "runs" / "R", repo, "origin")
    assert info == {"host": "pod-9", "gpu_name": "CPU only", "gpu_memory_mb": None,
                    "results_location": f"pod-9:{repo / 'runs' / 'R'}",
                    "results_remote": "https://github.com/team/results.git"}
    assert host_mod.describe("cpu", repo, repo, "no-such-remote")["results_remote"] is None


def test_baselines_survive_the_trip_through_supabase_rows(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from watcher.report.baselines import load_baselines, supabase_rows
    from watcher.report.remote import records_from_rows

    bases = load_baselines()
    assert len(bases) >= 2
    for base in bases:
        run, epochs = supabase_rows(base)
        assert run["kind"] == "baseline" and run["status"] == "finished"
        wire = json.loads(json.dumps([run])), json.loads(json.dumps(epochs))  # as PostgREST sends
        (back,) = records_from_rows(*wire)
        h = back.history
        assert (h.name, h.kind, h.notes) == (base.name, "baseline", base.notes)
        assert h.flat_params() == base.flat_params()
        assert h.epochs == base.epochs and h.stated_outcomes == base.stated_outcomes
        assert summary(back)["decision"] == base.stated_outcomes["verdict"]
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_KEY", raising=False)
    assert main(["baselines", "push"]) == 2
    assert capsys.readouterr().err.strip() == ("epochwatch baselines: Supabase is not configured: "
                                               "set SUPABASE_URL and SUPABASE_KEY (service key)")


def test_a_run_in_two_stores_is_refused_by_runs_and_analyze(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.db", "b.db"):
        _store(tmp_path / name, "TWICE", {1: (1.0, 8.0, [])})
    stores = [str(tmp_path / "a.db"), str(tmp_path / "b.db")]
    assert main(["analyze", "correlations", "--source", "local",
                 "--store", stores[0], "--store", stores[1]]) == 2
    err = capsys.readouterr().err
    assert "run TWICE is in two stores" in err and "a.db" in err and "b.db" in err
    from watcher.commands.runs import local_records

    with pytest.raises(Exception, match=r"run TWICE is in two stores \(.*a\.db, .*b\.db\)"):
        local_records([], stores)
    # one store named twice is read once, not refused
    assert [r.history.name for r in local_records([], [stores[0], stores[0]])] == ["TWICE"]
