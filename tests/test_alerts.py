"""Alerts through apprise to a real webhook server on 127.0.0.1 (apprise `json://` URLs):
content, pacing, repeat suppression, retries of a failing target, secrets."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from tests.httpstub import HttpStub, Response, wait_until
from watcher import logs
from watcher.publish.alerts import (
    ALERT_KINDS,
    AlertConfigError,
    AlertSink,
    enqueue_alert,
    format_alert,
)
from watcher.publish.outbox import OutboxWorker
from watcher.store import Store

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
FAST = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1}



def _hook(stub: HttpStub, path: str = "/hooks/epochwatch") -> str:
    return f"json://127.0.0.1:{stub.port}{path}"


FACTS_BY_KIND = {
    "stop_decision": dict(epoch=4, criterion="green_background_by_epoch_4", metric="background_match_rate",
                 value=0.25, comparison=">=", threshold=0.5, background_hex="#ff00ff",
                 visual_score=6.5, style_score=7.0, prompt_score=5.5, commit="0123456789abcdef",
                 results_url="https://git.example/results/SD15/epoch-004",
                 message="background still wrong at epoch 4"),
    "criterion_failed": dict(epoch=7, criterion="quality_8_by_epoch_7", metric="overall_score",
                             value=7.2, comparison=">=", threshold=8.0),
    "oscillation": dict(epoch=6, metric="background_match_rate", history=[0.0, 0.75, 0.25, 0.75]),
    "trainer_exited": dict(exit_code=0, epoch=10),
    "trainer_crashed": dict(exit_code=-9, cause="killed by SIGKILL (out of memory?)", epoch=3),
    "stop_refused": dict(epoch=4, error="stop refused: pid 4242 is not the trainer we started"),
    "epoch_overdue": dict(epoch=5, overdue_minutes=24.0, expected_minutes=11.0),
    "evaluation_error": dict(epoch=2, error="RuntimeError: CUDA out of memory\nTraceback ..."),
    "cannot_judge": dict(epoch=4, criterion="green_background_by_epoch_4", metric="background_match_rate",
                         message="green_background_by_epoch_4: cannot judge: background_match_rate "
                                 "has no value (null: nothing to measure it on) -> alert"),
    "training_health": dict(epoch=2, message="loss/current is nan at step 305 (epoch 2): the run "
                                             "is lost from there"),
    "run_finished": dict(verdict="production candidate", best_epoch=7, visual_score=8.6,
                         style_score=8.9, prompt_score=8.1, overall_score=8.53,
                         commit="fedcba9876543210"),
}
EXPECTED = {  # kind -> (words in the title, words in the body)
    "stop_decision": (["STOP", "epoch 4", "green_background_by_epoch_4"],
             ["background_match_rate = 0.25 (needs >= 0.50)", "#ff00ff", "visual 6.5",
              "Commit 0123456789ab", "https://git.example/results/SD15/epoch-004"]),
    "criterion_failed": (["Failed quality_8_by_epoch_7", "epoch 7"], ["overall_score = 7.20 (needs >= 8.00)"]),
    "oscillation": (["Oscillation", "epoch 6"], ["0.00 -> 0.75 -> 0.25 -> 0.75"]),
    "trainer_exited": (["Trainer exited", "(exit 0)"], ["Last epoch seen: 10"]),
    "trainer_crashed": (["Trainer crashed", "(exit -9)"], ["Cause: killed by SIGKILL"]),
    "stop_refused": (["Stop REFUSED", "epoch 4"], ["stop it by hand", "pid 4242 is not the trainer"]),
    "epoch_overdue": (["Epoch overdue", "epoch 5"], ["24 min", "every 11 min"]),
    "training_health": (["Training health", "epoch 2"], ["nan at step 305"]),
    "evaluation_error": (["Evaluation error", "epoch 2"], ["CUDA out of memory"]),
    "cannot_judge": (["Cannot judge green_background_by_epoch_4", "epoch 4"],
                     ["background_match_rate has no value"]),
    "run_finished": (["Run finished", "production candidate", "best epoch 7"],
                     ["overall 8.5", "Commit fedcba987654"]),
}


@pytest.mark.parametrize("kind", ALERT_KINDS)
def test_every_kind_has_a_short_title_and_the_key_numbers(kind: str) -> None:
    title, body = format_alert(kind, run=RUN, **FACTS_BY_KIND[kind])
    assert RUN in title and len(title) <= 150 and "\n" not in title
    title_words, body_words = EXPECTED[kind]
    for word in title_words:
        assert word in title
    for word in body_words:
        assert word in body
    assert "Traceback" not in body  # only an error's first line


def test_format_alert_aliases_unknown_kinds_extra_facts_and_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert format_alert("stop", run=RUN, epoch=4) == format_alert("stop_decision", run=RUN, epoch=4)
    with pytest.raises(ValueError, match="unknown alert kind"):
        format_alert("meteor", run=RUN)
    with pytest.raises(ValueError, match="needs run"):
        format_alert("stop_decision", epoch=4)
    # A fact no template places is not lost: it becomes a line of its own.
    title, body = format_alert("trainer_exited", run=RUN, state="stopped", cause="stop decision",
                               gpu_hours=1.5)
    assert title == f"Trainer stopped: {RUN}"
    assert body.splitlines() == ["Cause: stop decision", "gpu_hours: 1.50"]
    monkeypatch.setenv("SUPABASE_KEY", "sk_live_0123456789abcdef")
    _, body = format_alert("evaluation_error", run=RUN, error="APIError: key sk_live_0123456789abcdef refused")
    assert "sk_live_0123456789abcdef" not in body and "***" in body


def test_alert_sink_from_env() -> None:
    assert AlertSink.from_env(env={}) is None
    assert AlertSink.from_env(env={"EPOCHWATCH_ALERT_URLS": "  "}) is None
    sink = AlertSink.from_env(env={"EPOCHWATCH_ALERT_URLS":
                                   "json://127.0.0.1:9/a, slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ\nntfy://topic"})
    assert sink is not None and len(sink.target_ids) == 3
    with pytest.raises(AlertConfigError, match="entry 2 \\(scheme 'nope'\\)") as err:
        AlertSink.from_env(env={"EPOCHWATCH_ALERT_URLS": "json://127.0.0.1:9/a nope://secret-token-xyz"})
    assert "secret-token-xyz" not in str(err.value)


def test_alerts_arrive_with_title_and_body(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with HttpStub() as hook:
        worker = OutboxWorker(tmp_path / "state.db", RUN, None, AlertSink([_hook(hook)]),
                              min_alert_interval_s=0.0, **FAST)
        title, body = format_alert("stop_decision", run=RUN, **FACTS_BY_KIND["stop_decision"])
        assert enqueue_alert(store, RUN, "stop_decision", f"stop:{RUN}:4", title, body, window_s=600)
        worker.start()
        worker.wake()
        wait_until(lambda: store.outbox_counts(RUN).get("alert") == {"delivered": 1}, "delivery")
        assert worker.stop(5)
        (req,) = hook.recorded()
    assert (req.method, req.path) == ("POST", "/hooks/epochwatch")
    got = req.json()
    assert got["title"] == title and got["message"] == body and got["type"] == "failure"


def test_a_failing_target_is_retried_and_the_others_are_not_repeated(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with HttpStub() as good, HttpStub(lambda req: Response(500, {"error": "down"})) as bad:
        sink = AlertSink([_hook(good, "/good"), _hook(bad, "/bad")])
        worker = OutboxWorker(tmp_path / "state.db", RUN, None, sink,
                              min_alert_interval_s=0.0, **FAST)
        title, body = format_alert("trainer_crashed", run=RUN, exit_code=-9)
        enqueue_alert(store, RUN, "trainer_crashed", "crash", title, body, window_s=600)
        wait_until(lambda: len(bad.recorded()) >= 3, "three tries at the bad target",
                   step=worker.drain_once)  # never raises: a failing target is not fatal
        assert len(good.recorded()) == 1
        row = store.conn.execute("SELECT status, attempts, last_error FROM outbox").fetchone()
        assert row["status"] == "pending" and row["attempts"] >= 2
        assert "target 2" in row["last_error"] and "500" in row["last_error"]
        bad.respond = lambda req: Response(200, {})
        wait_until(lambda: store.outbox_counts(RUN)["alert"] == {"delivered": 1}, "recovery",
                   step=worker.drain_once)
        assert len(good.recorded()) == 1  # the good target got the message once
        assert bad.recorded()[-1].json()["title"] == title


def test_unreachable_target_gives_up_after_max_attempts_and_unblocks(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with HttpStub() as hook:
        url = _hook(hook)
        hook.stop()  # connection refused
        worker = OutboxWorker(tmp_path / "state.db", RUN, None, AlertSink([url]),
                              min_alert_interval_s=0.0, alert_max_attempts=3, **FAST)
        enqueue_alert(store, RUN, "epoch_overdue", "overdue:5", "first", "b", window_s=600)
        enqueue_alert(store, RUN, "epoch_overdue", "overdue:6", "second", "b", window_s=600)
        wait_until(lambda: store.outbox_counts(RUN)["alert"].get("dead") == 1, "dead letter",
                   step=worker.drain_once)
        hook.start()
        wait_until(lambda: store.outbox_counts(RUN)["alert"].get("delivered") == 1, "the next alert",
                   step=worker.drain_once)
        assert [r.json()["title"] for r in hook.recorded()] == ["second"]


def test_at_most_one_message_per_interval(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    interval = 0.3
    with HttpStub() as hook:
        worker = OutboxWorker(tmp_path / "state.db", RUN, None, AlertSink([_hook(hook)]),
                              min_alert_interval_s=interval, **FAST)
        for n in range(3):
            enqueue_alert(store, RUN, "criterion_failed", f"c{n}", f"alert {n}", "b", window_s=600)
        wait_until(lambda: len(hook.recorded()) == 3, "three alerts", step=worker.drain_once)
        arrivals = [r.at for r in hook.recorded()]
    assert [r.json()["title"] for r in hook.recorded()] == ["alert 0", "alert 1", "alert 2"]
    # Spacing is a guarantee of the pacing (a lower bound), not a speed measurement.
    assert all(b - a >= interval for a, b in zip(arrivals, arrivals[1:], strict=False))


def test_no_repeat_within_the_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    assert enqueue_alert(store, RUN, "epoch_overdue", "overdue:5", "t", "b", window_s=600)
    assert not enqueue_alert(store, RUN, "epoch_overdue", "overdue:5", "t", "b", window_s=600)
    assert enqueue_alert(store, RUN, "epoch_overdue", "overdue:6", "t", "b", window_s=600)
    assert enqueue_alert(store, "OTHER_RUN", "epoch_overdue", "overdue:5", "t", "b", window_s=600)
    # Once the window has passed (moved back in time here), the same alert may go again.
    store.conn.execute("UPDATE outbox SET created_at = created_at - 601")
    assert enqueue_alert(store, RUN, "epoch_overdue", "overdue:5", "t", "b", window_s=600)
    assert store.outbox_counts(RUN)["alert"] == {"pending": 3}


def test_no_secret_in_logs_errors_or_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "T0KEN-9f8e7d6c5b4a-secret"
    with HttpStub(lambda req: Response(503, {"error": f"bad token {token}"})) as hook:
        url = _hook(hook, f"/hooks/{token}")
        monkeypatch.setenv("EPOCHWATCH_ALERT_URLS", url)
        out = io.StringIO()
        logs.configure(level="debug", json_lines=True, stream=out)
        caplog.set_level(logging.DEBUG)
        store = Store(tmp_path / "state.db")
        sink = AlertSink.from_env()
        assert sink is not None
        worker = OutboxWorker(tmp_path / "state.db", RUN, None, sink, min_alert_interval_s=0.0, **FAST)
        title, body = format_alert("evaluation_error", run=RUN, epoch=1, error=f"posting to {url} failed")
        enqueue_alert(store, RUN, "evaluation_error", "err:1", title, body, window_s=600)
        wait_until(lambda: len(hook.recorded()) >= 2, "two failed tries", step=worker.drain_once)
        stored = [dict(r) for r in store.conn.execute("SELECT payload_json, last_error FROM outbox")]
        hook.respond = lambda req: Response(200, {})
        wait_until(lambda: store.outbox_counts(RUN)["alert"] == {"delivered": 1}, "delivery",
                   step=worker.drain_once)
        sent = [r.body.decode() for r in hook.recorded()]
    assert hook.recorded()[0].path == f"/hooks/{token}"  # the token was really used
    text = out.getvalue() + caplog.text + json.dumps(stored) + "".join(sent)
    assert "outbox.delivery_failed" in text and "503" in text  # failures were logged
    assert token not in text
