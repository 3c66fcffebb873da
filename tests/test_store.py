"""The state database: identity by content, epoch order, crash requeue, outbox order."""

from __future__ import annotations

import time
from pathlib import Path

from watcher.store import Store


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
        assert [d["payload"]["v"] for d in due] == [11, 2]
        s.mark_failed(due[0]["id"], "503", retry_at=time.time() + 60)
        assert s.due("supabase") == []  # the first item blocks the channel: order is kept
        s.mark_failed(due[0]["id"], "503", retry_at=time.time() - 1)
        s.mark_delivered(due[0]["id"])
        assert not s.enqueue("R", "supabase", "R:1", {"v": 12})  # delivered: not queued again
        assert [d["payload"]["v"] for d in s.due("supabase")] == [2]
        assert s.outbox_counts("R")["supabase"] == {"delivered": 1, "pending": 1}


def test_one_open_stop_request_per_run(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        first = s.request_stop("R", 4, "background wrong")
        assert s.request_stop("R", 5, "again") == first
        s.close_stop_request(first, "terminated")
        assert s.open_stop_request("R") is None
        assert s.request_stop("R", 6, "later") != first
