"""The public epoch path (watcher.epoch.path.EpochPath) in-process: evaluate -> decide -> publish
-> act on a real state database, a real results git repository and the real outbox, with
`watcher.testing.FakePipeline` (real pixel-art sprites) standing in for diffusers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from watcher import daemon as daemon_module
from watcher.config import SamplePrompt, load_config
from watcher.daemon import Daemon
from watcher.epoch.path import EpochPath
from watcher.publish.destinations import PublishedEpoch
from watcher.store import Store
from watcher.testing import FakePipeline, lora_bytes, write_watch_config
from watcher.training.storage import load_state

GATE = "green_background_by_epoch_4"


def open_path(tmp_path: Path, criteria: str = "") -> EpochPath:
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="PATH_RUN",
                                criteria=criteria)
    return EpochPath.open(load_config(config))


def alert_kinds(path: EpochPath) -> list[str]:
    rows = path.store.conn.execute(
        "SELECT payload_json FROM outbox WHERE channel='alert' ORDER BY id").fetchall()
    return [json.loads(r[0])["kind"] for r in rows]


def test_epochs_through_the_path_stop_at_the_epoch_4_gate(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    pipeline = FakePipeline(background="#ff0000")  # red where the prompts ask for green
    try:
        outcomes = []
        for epoch in range(1, 5):
            ck = path.add_source(tmp_path / f"lora-{epoch:06d}.safetensors", epoch,
                                 f"{epoch:064x}", 1000)
            outcomes.append(path.run_checkpoint(pipeline, ck))
        assert [o.evaluation.aggregate["background_match_rate"] for o in outcomes] == [0.0] * 4
        assert [o.stops for o in outcomes] == [False, False, False, True]
        gate = next(d for d in outcomes[3].decisions if d.criterion == GATE)
        assert gate.outcome == "fail" and gate.stops and gate.alert_kind == "stop_decision"
        (request,) = path.store.stop_requests("PATH_RUN")
        assert request.epoch == 4 and request.reason.startswith(f"{GATE}: background_match_rate 0 < 0.5")
        assert path.store.run_status("PATH_RUN") == "stopping"
        assert "stop_decision" in alert_kinds(path)
        assert len(pipeline.loaded) == 4
        log = subprocess.run(["git", "-C", str(path.cfg.results_repo), "log", "--format=%s"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        assert log[0].startswith("PATH_RUN epoch 4: bg 0/2 right") and "STOP (" in log[0]
        assert len(log) == 4
        assert path.store.evaluations("PATH_RUN")[-1].decisions == outcomes[3].decisions
        assert [r.decision for r in path.store.decisions("PATH_RUN", 4)] == outcomes[3].decisions
    finally:
        path.close()


def test_a_green_run_continues_and_a_restart_redoes_nothing(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    try:
        ck = path.add_source(tmp_path / "lora-000004.safetensors", 4, "a" * 64, 1000)
        outcome = path.run_checkpoint(FakePipeline(background="#00ff00"), ck)
        assert outcome.evaluation.aggregate["background_match_rate"] == 1.0
        assert not outcome.stops and not any(d.stops for d in outcome.decisions)
        assert path.store.stop_requests("PATH_RUN") == []
        assert path.store.checkpoint(ck.id).attempts == 1  # one try, counted once
        queued = alert_kinds(path)
    finally:
        path.close()
    again = EpochPath.open(path.cfg)  # a restart: nothing lost, so nothing redone
    try:
        assert alert_kinds(again) == queued
        assert again.store.stop_requests("PATH_RUN") == []
    finally:
        again.close()


def test_images_from_a_sample_source_with_an_unjudgeable_prompt_cannot_be_judged(
        tmp_path: Path) -> None:
    rule = """
[[criteria]]
name = "gate"
metric = "background_match_rate"
threshold = 0.5
epoch = 2
action = "stop"
on_missing = "stop"
"""
    path = open_path(tmp_path, criteria=rule)
    fake = FakePipeline(background="#00ff00")
    try:
        # A sample source brought prompts that name no background: nothing to judge it on.
        prompt = SamplePrompt("pixel art portrait, pink hair (#ff66cc)", "", 7, 128, 128, 2, 7.5)
        samples = list(zip([prompt] * 2, fake.generate([prompt] * 2, 2), strict=True))
        first = path.judge_images(path.add_source(tmp_path / "samples/e1", 1, "1" * 64, 0), samples)
        assert [d.outcome for d in first.decisions] == ["pending"]  # not due before epoch 2
        second = path.judge_images(path.add_source(tmp_path / "samples/e2", 2, "2" * 64, 0), samples)
        (d,) = second.decisions
        assert (d.outcome, d.action, d.evidence["reason"]) == ("cannot_judge", "stop", "missing_metric")
        assert "background_match_rate has no value" in d.message
        assert second.stops and alert_kinds(path).count("cannot_judge") == 1
        row = path.store.conn.execute(
            "SELECT payload_json FROM outbox WHERE channel='alert' ORDER BY id DESC").fetchone()
        assert json.loads(row[0])["title"] == "Cannot judge gate: PATH_RUN epoch 2"
        assert [c.status for c in path.store.checkpoints("PATH_RUN")] == ["evaluated"] * 2
        # The source has no more epochs: the run ends as the daemon would end it, once.
        assert path.end_run(last_epoch_done=False) == "stopped"
        run = path.store.run_row("PATH_RUN")
        assert run is not None and (run.status, run.verdict) == ("stopped", "failure")
        assert path.end_run(last_epoch_done=False) is None  # announced already
        assert alert_kinds(path).count("run_finished") == 1
    finally:
        path.close()


def test_the_daemon_in_process_settles_evaluates_and_stops_at_epoch_4(tmp_path: Path) -> None:
    """The whole loop (detect, settle, the epoch path) in this process with a fake renderer:
    seconds, not a minute."""
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="LOOP_RUN")
    cfg = load_config(config)
    out = cfg.output_dir
    out.mkdir(parents=True)
    for epoch in range(1, 5):
        (out / f"{cfg.output_name}-{epoch:06d}.safetensors").write_bytes(
            lora_bytes(epoch, cfg.output_name, seed=epoch))
    (out / f"{cfg.output_name}-000005.safetensors").write_bytes(b"not safetensors")
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    fake = FakePipeline(background="#ff0000")
    try:
        assert Daemon(cfg, once=True, pipeline=fake).run() == 0
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert [Path(p).name for p in fake.loaded] == [
        f"{cfg.output_name}-{e:06d}.safetensors" for e in range(1, 5)]
    with Store(cfg.state_db) as store:
        assert [c.status for c in store.checkpoints("LOOP_RUN")] == ["evaluated"] * 4
        (request,) = store.stop_requests("LOOP_RUN")
        assert request.epoch == 4 and request.reason.startswith(GATE)
        (refused,) = store.rejected("LOOP_RUN")
        assert refused.path.endswith("-000005.safetensors")
        assert store.daemon_state("LOOP_RUN") == "stopped"


QUALITY_9 = """
[[criteria]]
name = "quality_9_by_epoch_1"
metric = "overall_score"
threshold = 9.0
epoch = 1
action = "alert"
"""


def test_the_final_verdict_uses_the_plans_partial_at_least(tmp_path: Path) -> None:
    """The same epoch, missing the rule's 9: a failure under a plan whose partial_at_least is
    9, partial with no plan (no failure line is made up)."""
    verdicts = {}
    for with_plan in (True, False):
        root = tmp_path / str(with_plan)
        root.mkdir()
        config = write_watch_config(root, root / "no-model-needed", name="PATH_RUN", criteria=QUALITY_9)
        if with_plan:
            (root / "plan.toml").write_text('[plan]\nrun = "PATH_RUN"\ngoal = "a line at 9"\n'
                                            "partial_at_least = 9.0\n")
            config.write_text(config.read_text().replace("[run]\n", '[run]\nplan = "plan.toml"\n', 1))
        path = EpochPath.open(load_config(config))
        try:
            ck = path.add_source(root / "lora-000001.safetensors", 1, "c" * 64, 1000)
            score = path.run_checkpoint(FakePipeline(background="#00ff00"), ck).evaluation.aggregate["overall_score"]
            assert score < 9.0
            path.end_run(last_epoch_done=True)
            row = path.store.run_row("PATH_RUN")
            assert row is not None
            verdicts[with_plan] = row.verdict
            judged = path.store.judged_by("PATH_RUN")  # recorded at start, for later analyses
            assert judged is not None and judged[1] == (9.0 if with_plan else None)
        finally:
            path.close()
    assert verdicts == {True: "failure", False: "partial"}


class _Broken:
    """A destination whose service is gone: it raises on every epoch."""

    name = "broken"

    def on_epoch(self, epoch: PublishedEpoch) -> None:
        raise ConnectionError("destination unreachable")


class _Seen:
    name = "seen"

    def __init__(self) -> None:
        self.epochs: list[PublishedEpoch] = []

    def on_epoch(self, epoch: PublishedEpoch) -> None:
        self.epochs.append(epoch)


def test_a_failing_destination_is_isolated_and_recorded(tmp_path: Path) -> None:
    path = open_path(tmp_path)
    seen = _Seen()
    path.publisher.destinations = [_Broken(), *path.publisher.destinations, seen]
    try:
        ck = path.add_source(tmp_path / "lora-000004.safetensors", 4, "b" * 64, 1000)
        outcome = path.run_checkpoint(FakePipeline(background="#ff0000"), ck)
        assert outcome.stops  # the epoch went on: decided, recorded, acted on
        (published,) = seen.epochs
        assert published.epoch == 4 and published.commit == path.store.git_commit_of(ck.id)
        assert published.commit is not None and not published.backlog
        assert [d.criterion for d in published.decisions] == [d.criterion for d in outcome.decisions]
        assert "stop_decision" in alert_kinds(path)  # the alerts destination after the broken one ran
        (event,) = [e for e in path.store.events("PATH_RUN") if e.kind == "destination_failed"]
        assert event.epoch == 4 and "broken: ConnectionError: destination unreachable" in event.message
    finally:
        path.close()


def test_the_daemon_reads_the_trainers_last_figures_before_it_exits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run shorter than one health period: the figures are read once more as the run ends."""
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="SHORT_RUN")
    cfg = load_config(config)
    cfg.output_dir.mkdir(parents=True)
    (cfg.output_dir / f"{cfg.output_name}-000001.safetensors").write_bytes(
        lora_bytes(1, cfg.output_name, seed=1))
    cfg.trainer.log_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.trainer.log_file.write_text("epoch 1/1\nsteps: 100%|##########| 40/40 [00:20<00:00,  2.00it/s, avr_loss=0.123]\n")
    monkeypatch.setattr(daemon_module, "HEALTH_EVERY_S", 1e9)
    daemon = Daemon(cfg, once=True, pipeline=FakePipeline())
    daemon._last_health = time.time()  # no health check comes round during this run
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        assert daemon.run() == 0
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    with Store(cfg.state_db) as store:
        figures = load_state(store, "SHORT_RUN")
    assert figures is not None and figures["figures"]["step"] == 40, figures
    assert figures["figures"]["loss"] == pytest.approx(0.123)
