"""Alerts: short messages to Slack, webhooks, Discord, ntfy ... through apprise.

Targets come from EPOCHWATCH_ALERT_URLS (apprise URLs separated by spaces or commas). The
daemon formats an alert (`format_alert`) and queues it (`enqueue_alert`, which drops repeats
within a window); the outbox worker sends it, paced and retried. Each target is tracked on its
own, so a failing target is retried without repeating the message to the ones that got it.
Target URLs carry tokens: they never appear in logs, errors or messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from watcher.logs import get_logger
from watcher.redact import redact, scrub, split_urls

if TYPE_CHECKING:
    from watcher.store import Store

ALERT_KINDS = (
    "stop_decision", "criterion_failed", "oscillation", "trainer_exited", "trainer_crashed",
    "stop_refused", "epoch_overdue", "evaluation_error", "run_finished", "cannot_judge",
    "training_health",
)
KIND_ALIASES = {"stop": "stop_decision"}
# apprise notify types per kind (colour / icon in Slack and Discord)
_NOTIFY_TYPE = {
    "stop_decision": "failure", "criterion_failed": "warning", "oscillation": "warning",
    "trainer_exited": "info", "trainer_crashed": "failure", "stop_refused": "failure",
    "epoch_overdue": "warning", "evaluation_error": "failure", "run_finished": "success",
    "cannot_judge": "failure", "training_health": "failure",
}
# Facts the templates place; any other fact is appended as a "name: value" line.
FACTS = (
    "run", "epoch", "criterion", "metric", "value", "comparison", "threshold", "message",
    "background_hex", "visual_score", "style_score", "prompt_score", "overall_score",
    "color_accuracy", "style_quality", "background_match_rate", "history", "commit",
    "results_url", "exit_code", "signal", "state", "cause", "overdue_minutes",
    "expected_minutes", "error", "verdict", "best_epoch",
)


class AlertConfigError(ValueError):
    """EPOCHWATCH_ALERT_URLS holds an entry apprise cannot use (the entry itself is not shown)."""


class _ScrubLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


# Loggers that print a target's URL or path (urllib3: "POST /hooks/<token> HTTP/1.1").
_SCRUBBED_LOGGERS = ("apprise", "urllib3.connectionpool")


def _install_log_filters() -> None:
    for name in _SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubLogs) for f in logger.filters):
            logger.addFilter(_ScrubLogs())


def target_id(url: str) -> str:
    """A stable, non-reversible name for one target (stored in the outbox, never the URL)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


class AlertSink:
    """One apprise object per target URL, so each target succeeds or fails on its own."""

    def __init__(self, urls: list[str]) -> None:
        import apprise  # ~0.2 s; only when alert URLs are configured

        _install_log_filters()
        self._targets: list[tuple[str, Any]] = []
        for n, url in enumerate(urls, 1):
            ap = apprise.Apprise()
            if not ap.add(url):
                scheme = url.split("://", 1)[0] if "://" in url else "?"
                raise AlertConfigError(
                    f"EPOCHWATCH_ALERT_URLS entry {n} (scheme '{scheme[:20]}') is not an apprise URL"
                )
            self._targets.append((target_id(url), ap))
        if not self._targets:
            raise AlertConfigError("EPOCHWATCH_ALERT_URLS holds no URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSink | None:
        env = os.environ if env is None else env
        urls = split_urls(env.get("EPOCHWATCH_ALERT_URLS", ""))
        return cls(urls) if urls else None

    @property
    def target_ids(self) -> list[str]:
        return [t for t, _ in self._targets]

    def deliver(
        self, title: str, body: str, notify_type: str = "info", skip: Collection[str] = ()
    ) -> tuple[set[str], list[str]]:
        """Send to every target not in skip. Returns (targets now done, skip included;
        one scrubbed error line per failed target)."""
        import apprise

        done = set(skip) & set(self.target_ids)
        errors: list[str] = []
        body = body or title  # apprise refuses an empty body
        for n, (tid, ap) in enumerate(self._targets, 1):
            if tid in done:
                continue
            with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
                try:
                    ok = bool(ap.notify(body=body, title=title, notify_type=notify_type))
                except Exception as exc:  # a plugin bug must not kill the worker
                    ok = False
                    logging.getLogger("apprise").warning("%s", type(exc).__name__)
            if ok:
                done.add(tid)
            else:
                reason = " ".join(captured.getvalue().split())[-200:] or "no detail"
                errors.append(f"target {n}: {scrub(reason)}")
        return done, errors

    def send(self, title: str, body: str, notify_type: str = "info") -> bool:
        """Send to every target; True when all of them accepted the message."""
        done, _errors = self.deliver(title, body, notify_type)
        return done == set(self.target_ids)


# ---- formatting ---------------------------------------------------------------------------------
def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _scores(f: Mapping[str, Any]) -> str | None:
    parts = [
        f"{label} {_num(f[key], 1)}"
        for key, label in (("visual_score", "visual"), ("style_score", "style"),
                           ("prompt_score", "prompt"), ("overall_score", "overall"))
        if f.get(key) is not None
    ]
    return "Scores (1-10): " + ", ".join(parts) if parts else None


def _measures(f: Mapping[str, Any]) -> str | None:
    parts = []
    if f.get("background_hex"):
        parts.append(f"background {f['background_hex']}")
    if f.get("background_match_rate") is not None:
        parts.append(f"background match {100 * float(f['background_match_rate']):.0f}%")
    if f.get("color_accuracy") is not None:
        parts.append(f"colour accuracy {_num(f['color_accuracy'], 1)}/100")
    if f.get("style_quality") is not None:
        parts.append(f"style quality {_num(f['style_quality'], 1)}/100")
    text = ", ".join(parts)
    return text[:1].upper() + text[1:] if parts else None


def _check(f: Mapping[str, Any]) -> str | None:
    if f.get("metric") is None or f.get("value") is None:
        return None
    need = ""
    if f.get("comparison") and f.get("threshold") is not None:
        need = f" (needs {f['comparison']} {_num(f['threshold'])})"
    return f"{f['metric']} = {_num(f['value'])}{need}"


def _links(f: Mapping[str, Any]) -> list[str | None]:
    return [
        f"Commit {str(f['commit'])[:12]}" if f.get("commit") else None,
        f"Results: {f['results_url']}" if f.get("results_url") else None,
    ]


def _epoch(f: Mapping[str, Any]) -> str:
    return f" epoch {f['epoch']}" if f.get("epoch") is not None else ""


def _first_line(text: Any) -> str | None:
    lines = str(text or "").strip().splitlines()
    return lines[0][:300] if lines else None


def _stop_decision(f: Mapping[str, Any], run: str, ep: str) -> tuple[str, list[str | None]]:
    crit = f.get("criterion")
    title = f"STOP {run}{ep}" + (f": {crit}" if crit else "")
    return title, ["Decision: stop training.", f.get("message"), _check(f), _measures(f), _scores(f)]


def _criterion_failed(f: Mapping[str, Any], run: str, ep: str) -> tuple[str, list[str | None]]:
    crit = f.get("criterion")
    title = f"Failed {crit}: {run}{ep}" if crit else f"Criterion failed: {run}{ep}"
    return title, [f.get("message"), _check(f), _measures(f), _scores(f)]


def _cannot_judge(f: Mapping[str, Any], run: str, ep: str) -> tuple[str, list[str | None]]:
    crit = f.get("criterion")
    title = f"Cannot judge {crit}: {run}{ep}" if crit else f"Cannot judge: {run}{ep}"
    return title, [f.get("message"), _measures(f), _scores(f)]


def _oscillation(f: Mapping[str, Any], run: str, ep: str) -> tuple[str, list[str | None]]:
    history = f.get("history")
    trail = " -> ".join(_num(v) for v in history) if history else None
    line = f"{f.get('metric') or 'metric'} by epoch: {trail}" if trail else _check(f)
    return f"Oscillation: {run}{ep}", [f.get("message"), line, _measures(f), _scores(f)]


def _trainer_end(f: Mapping[str, Any], run: str, crashed: bool) -> tuple[str, list[str | None]]:
    how = "crashed" if crashed else str(f.get("state") or "exited")
    code = f" (exit {f['exit_code']})" if f.get("exit_code") is not None else ""
    sig = f" (signal {f['signal']})" if f.get("signal") else ""
    return f"Trainer {how}: {run}{code or sig}", [
        f"Cause: {f['cause']}" if f.get("cause") else None,
        f"Last epoch seen: {f['epoch']}" if f.get("epoch") is not None else None,
        f.get("message"),
    ]


def _epoch_overdue(f: Mapping[str, Any], run: str, ep: str) -> tuple[str, list[str | None]]:
    overdue, expected = f.get("overdue_minutes"), f.get("expected_minutes")
    waited = f"No new checkpoint for {_num(overdue, 0)} min" if overdue is not None else ""
    if expected is not None:
        waited += f" (expected one every {_num(expected, 0)} min)"
    return f"Epoch overdue: {run}{ep}", [waited.strip(), f.get("message")]


def _run_finished(f: Mapping[str, Any], run: str) -> tuple[str, list[str | None]]:
    verdict = f.get("verdict") or "finished"
    best = f", best epoch {f['best_epoch']}" if f.get("best_epoch") is not None else ""
    return f"Run finished: {run}: {verdict}{best}", [f.get("message"), _scores(f), _measures(f)]


def format_alert(kind: str, **facts: Any) -> tuple[str, str]:
    """(title, body) for one alert kind (ALERT_KINDS, or "stop" for "stop_decision").
    `run` is required; missing facts are left out, facts outside FACTS are added as
    "name: value" lines. Text is scrubbed of secrets."""
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(ALERT_KINDS)}")
    if not facts.get("run"):
        raise ValueError("format_alert needs run=<run name>")
    f, run = facts, str(facts["run"])
    ep = _epoch(f)
    if kind == "stop_decision":
        title, lines = _stop_decision(f, run, ep)
    elif kind == "criterion_failed":
        title, lines = _criterion_failed(f, run, ep)
    elif kind == "oscillation":
        title, lines = _oscillation(f, run, ep)
    elif kind == "cannot_judge":
        title, lines = _cannot_judge(f, run, ep)
    elif kind in ("trainer_exited", "trainer_crashed"):
        title, lines = _trainer_end(f, run, crashed=kind == "trainer_crashed")
    elif kind == "stop_refused":
        title = f"Stop REFUSED: {run}{ep}"
        lines = ["The trainer is still running: stop it by hand.", _first_line(f.get("error")),
                 f.get("message")]
    elif kind == "epoch_overdue":
        title, lines = _epoch_overdue(f, run, ep)
    elif kind == "training_health":  # NaN loss, a rising loss, a stalled trainer
        title, lines = f"Training health: {run}{ep}", [f.get("message")]
    elif kind == "evaluation_error":
        title, lines = f"Evaluation error: {run}{ep}", [_first_line(f.get("error")), f.get("message")]
    else:
        title, lines = _run_finished(f, run)
    lines += _links(f)
    lines += [f"{k}: {_num(v)}" for k, v in f.items() if k not in FACTS and v is not None]
    # apprise refuses an empty body: the title stands in when no fact adds anything
    body = "\n".join(str(x) for x in lines if x) or title
    return redact(title)[:150], redact(body)


def notify_type_for(kind: str) -> str:
    return _NOTIFY_TYPE.get(KIND_ALIASES.get(kind, kind), "info")


def enqueue_alert(
    store: Store, run: str, kind: str, dedupe_key: str, title: str, body: str, window_s: float
) -> bool:
    """Queue an alert unless one with the same dedupe_key was queued within window_s.
    True when queued."""
    now = time.time()
    with store.tx() as conn:
        # The window looks at the outbox's own records (read-only; Store has no query for it).
        row = conn.execute(
            "SELECT MAX(created_at) FROM outbox WHERE channel='alert' AND run=? "
            "AND json_extract(payload_json, '$.dedupe_key')=?",
            (run, dedupe_key),
        ).fetchone()
        if row and row[0] is not None and now - float(row[0]) < window_s:
            get_logger(run=run).info("alert.suppressed", kind=kind, dedupe_key=dedupe_key)
            return False
        payload = {"kind": kind, "title": title, "body": body, "dedupe_key": dedupe_key}
        return store.enqueue(run, "alert", f"{dedupe_key}@{time.time_ns()}", payload)
