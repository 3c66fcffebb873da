"""The state database: identity by content, epoch order, crash requeue, outbox order."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from watcher import records
from watcher.rules import Decision
from watcher.store import Store

# Each table and the record its rows come back as; JSON columns are parsed into the field
# named without "_json".
RECORDS = {"runs": records.RunRow, "checkpoints": records.Checkpoint,
           "rejected_files": records.RejectedFile, "trainer": records.TrainerRow,
           "daemon": records.DaemonRow, "stop_requests": records.StopRequest,
           "outbox": records.OutboxItem, "events": records.Event, "reviews": records.Review,
           "review_history": records.Review}


def test_same_content_is_one_checkpoint_and_epochs_come_in_order(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        s.ensure_run("R")
        c3, new3 = s.add_checkpoint("R", "/o/r-000003.safetensors", 3, "h3", 10, "sess", {})
        c1, _ = s.add_checkpoint("R", "/o/r-000001.safetensors", 1, "h1", 10, "sess", {})
        again, new_again = s.add_checkpoint("R", "/o/renamed.safetensors", 3, "h3", 10, "sess", {})
        assert new3 and not new_again and again.id == c3.id and again.path == "/o/renamed.safetensors"
        assert s.next_pending("R").id == c1.id
        # A rewritten file (new content, same epoch) is a new checkpoint.
        c3b, new3b = s.add_checkpoint("R", "/o/r-000003.safetensors", 3, "h3b", 11, "sess", {})
        assert new3b and c3b.id != c3.id


def test_interrupted_evaluation_is_requeued_but_recorded_one_is_not(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        s.ensure_run("R")
        a, _ = s.add_checkpoint("R", "/a", 1, "ha", 1, None, {})
        b, _ = s.add_checkpoint("R", "/b", 2, "hb", 1, None, {})
        s.mark_checkpoint(a.id, "evaluating")
        s.save_evaluation(a, 1, {"aggregate": {}}, "/r/epoch-001")
        s.mark_checkpoint(b.id, "evaluating")
    with Store(tmp_path / "s.db") as s:  # "after the crash"
        assert s.requeue_interrupted("R") == 1
        assert s.checkpoint(a.id).status == "evaluated"
        assert s.checkpoint(b.id).status == "pending"
        assert s.checkpoint(b.id).attempts == 1


def test_outbox_keeps_order_and_dedupes(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        assert s.enqueue("R", "supabase", "R:1", {"v": 1})
        assert s.enqueue("R", "supabase", "R:2", {"v": 2})
        assert s.enqueue("R", "supabase", "R:1", {"v": 11})  # newer data replaces pending
        due = s.due("supabase")
        assert [d.payload["v"] for d in due] == [11, 2]
        assert (due[0].run, due[0].channel, due[0].dedupe_key, due[0].attempts) == ("R", "supabase", "R:1", 0)
        s.mark_failed(due[0].id, "503", retry_at=time.time() + 60)
        assert s.due("supabase") == []  # the first item blocks the channel: order is kept
        s.mark_failed(due[0].id, "503", retry_at=time.time() - 1)
        assert s.due("supabase")[0].last_error == "503" and s.due("supabase")[0].attempts == 2
        s.mark_delivered(due[0].id)
        assert not s.enqueue("R", "supabase", "R:1", {"v": 12})  # delivered: not queued again
        assert [d.payload["v"] for d in s.due("supabase")] == [2]
        assert s.outbox_counts("R")["supabase"] == {"delivered": 1, "pending": 1}


def test_one_open_stop_request_per_run(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        first = s.request_stop("R", 4, "background wrong")
        assert s.request_stop("R", 5, "again") == first
        s.close_stop_request(first, "terminated")
        assert s.open_stop_request("R") is None
        assert s.request_stop("R", 6, "later") != first


def test_records_hold_every_column_of_their_table(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        for table, record in RECORDS.items():
            columns = {r["name"].removesuffix("_json") for r in s.conn.execute(f"PRAGMA table_info({table})")}
            fields = {f.name for f in dataclasses.fields(record)}
            if table == "checkpoints":  # timings kept for benches, read by SQL there
                columns -= {"started_at", "finished_at"}
            if table == "review_history":  # a surrogate key only: entries are kept in its order
                columns -= {"id"}
            assert fields == columns, (table, fields ^ columns)


def test_rows_come_back_typed(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        assert s.run_row("R") is None and s.run_status("R") is None and s.trainer("R") is None
        s.ensure_run("R", config_path="w.toml", params={"lr": 1e-4})
        s.update_run("R", status="stopped", verdict="stop", best_epoch=3)
        run = s.run_row("R")
        assert run is not None and (run.params, run.status, run.verdict, run.best_epoch) == \
            ({"lr": 1e-4}, "stopped", "stop", 3)
        s.set_trainer("R", pid=12, pgid=12, start_time=5.0, state="running")
        s.set_daemon("R", pid=13, state="idle", gpu_memory_bytes=2**20)
        trainer, daemon = s.trainer("R"), s.daemon("R")
        assert trainer is not None and (trainer.pid, trainer.start_time, trainer.state, trainer.cause) == \
            (12, 5.0, "running", None) and trainer.command is None
        s.set_trainer("R", command_json=json.dumps(["accelerate", "launch"]))
        trainer = s.trainer("R")
        assert trainer is not None and trainer.command == ["accelerate", "launch"]
        assert daemon is not None and (daemon.pid, daemon.state, daemon.heartbeat_at) == (13, "idle", None)
        assert s.daemon_state("R") == "idle"
        assert s.add_rejected("R", "/o/x.ckpt", 10, 1.5, "not safetensors")
        [rejected] = s.rejected("R")
        assert (rejected.path, rejected.size, rejected.mtime, rejected.reason) == ("/o/x.ckpt", 10, 1.5, "not safetensors")
        # `status --json` prints these rows as dicts: the same keys as the table, in order
        assert list(rejected.to_dict()) == ["id", "run", "path", "size", "mtime", "reason", "created_at"]
        s.request_stop("R", 4, "background wrong")
        [req] = s.stop_requests("R")
        assert (req.epoch, req.reason, req.handled_at) == (4, "background wrong", None)
        assert json.loads(json.dumps(req.to_dict())) == {
            "id": req.id, "run": "R", "epoch": 4, "reason": "background wrong",
            "requested_at": req.requested_at, "handled_at": None, "result": None}
        s.add_event("R", "error", "boom", "it broke", epoch=2)
        [event] = s.events("R", level="error")
        assert (event.kind, event.message, event.epoch) == ("boom", "it broke", 2)
        s.save_review("R", 3, 7.0, 6.0, 8.0, "first")
        s.save_review("R", 3, 5.0, 6.0, 8.0, "second")
        assert [(r.epoch, r.visual, r.notes) for r in s.reviews("R")] == [(3, 5.0, "second")]
        assert [r.notes for r in s.review_history("R", 3)] == ["first", "second"]


def test_evaluations_carry_their_decisions(tmp_path: Path) -> None:
    d = Decision("gate", "background_match_rate", 0.25, ">=", 0.5, "fail", "stop", "gate: 0.25 < 0.5",
                 {"mode": "by"})
    with Store(tmp_path / "s.db") as s:
        ck, _ = s.add_checkpoint("R", "/o/e4.safetensors", 4, "ab" * 32, 100, None, {})
        s.save_evaluation(ck, 4, {"aggregate": {"overall_score": 3.0}, "decisions": [d.to_dict()]}, "/r/e4")
        s.save_decision("R", 4, ck.id, d)
        [ev] = s.unpublished("R")
        assert (ev.epoch, ev.path, ev.sha256, ev.result_dir, ev.git_commit) == (4, ck.path, ck.sha256, "/r/e4", None)
        assert ev.aggregate.to_dict() == {"overall_score": 3.0} and ev.decisions == [d] and ev.decisions[0].stops
        s.set_git_commit(ck.id, "c0ffee")
        assert s.unpublished("R") == [] and s.evaluations("R")[0].git_commit == "c0ffee"
        [row] = s.decisions("R")
        assert (row.epoch, row.checkpoint_id, row.decision) == (4, ck.id, d)
