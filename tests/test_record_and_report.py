"""The evaluate stage writes nothing (the record step writes the epoch's folder), and the
report is a destination: its failure at the run's end is isolated and recorded, and a later
start commits the report it missed, once. Real state database, results repository, outbox;
`watcher.testing.FakePipeline` renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.publish.destinations import FinishedRun, RunReport
from watcher.testing import FakePipeline, write_watch_config

RUN = "RECORD_RUN"


def open_path(tmp_path: Path) -> EpochPath:
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name=RUN)
    return EpochPath.open(load_config(config))


def report_commits(path: EpochPath) -> list[str]:
    log = subprocess.run(["git", "-C", str(path.cfg.results_repo), "log", "--format=%s"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return [s for s in log if s.startswith(f"{RUN} report:")]


class _BrokenReport(RunReport):
    def on_run_end(self, run: FinishedRun) -> None:
        raise OSError("disk full while writing report.md")


def test_evaluate_writes_nothing_and_record_writes_the_folder(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    run_dir = path.cfg.run_results_dir
    try:
        ck = path.add_source(tmp_path / "lora-000001.safetensors", 1, "1" * 64, 1000)
        evaluation = path.evaluate(FakePipeline(background="#00ff00"), ck)
        assert not (run_dir / "epoch-001").exists() and not (run_dir / "epoch-001.tmp").exists()
        names = [s.name for s in evaluation.samples]
        assert names and [e["sample"] for e in evaluation.metrics["images"]] == \
            [f"samples/{n}" for n in names]
        path.conclude(evaluation)
        folder = run_dir / "epoch-001"
        assert sorted(p.name for p in (folder / "samples").iterdir()) == sorted(names)
        assert sorted(p.name for p in (folder / "samples_24px").iterdir()) == sorted(names)
        assert (folder / "metrics.json").is_file() and (folder / "contact_sheet.png").is_file()
        assert (run_dir / "grid.png").is_file()  # the report destination drew the run's pictures
    finally:
        path.close()


def test_an_unwritable_results_folder_records_nothing(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    run_dir = path.cfg.run_results_dir
    try:
        ck = path.add_source(tmp_path / "lora-000001.safetensors", 1, "1" * 64, 1000)
        evaluation = path.evaluate(FakePipeline(background="#00ff00"), ck)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.write_text("a file where the run's folder should be")
        with pytest.raises(OSError):
            path.conclude(evaluation)
        assert path.store.evaluations(RUN) == [] and path.store.decisions(RUN) == []
        assert not run_dir.with_name("epoch-001.tmp").exists()
    finally:
        path.close()


def test_a_failing_report_is_isolated_and_the_next_start_commits_it_once(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    try:
        ck = path.add_source(tmp_path / "lora-000010.safetensors", 10, "a" * 64, 1000)
        path.run_checkpoint(FakePipeline(background="#00ff00"), ck)
        path.publisher.destinations = [
            _BrokenReport(path.cfg, path.store, path.repo, lambda commit: None)
            if isinstance(d, RunReport) else d for d in path.publisher.destinations]
        assert path.end_run(last_epoch_done=True) == "finished"  # the run's end went on
        assert path.store.run_status(RUN) == "finished" and report_commits(path) == []
        (event,) = [e for e in path.store.events(RUN) if e.kind == "destination_failed"]
        assert event.epoch is None and "report: OSError: disk full" in event.message
    finally:
        path.close()
    again = EpochPath.open(path.cfg)  # a restart: the run is over, its report is missing
    try:
        assert again.end_run(last_epoch_done=True) is None
        assert len(report_commits(again)) == 1
        assert (again.cfg.run_results_dir / "report.md").is_file()
        assert again.end_run(last_epoch_done=True) is None
        assert len(report_commits(again)) == 1  # committed once
    finally:
        again.close()
