"""The ledger check run after every chaos run: every epoch that appeared is in the state
database, in exactly one git commit, and in exactly one delivered Supabase row.

Expectations are computed from the files themselves (sha256 with hashlib, the epoch from the
header through the reference `safetensors` package), never through the code under test.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.records import Evaluation
from watcher.rules import Decision
from watcher.store import Store

TRAILER = "Epochwatch-Checkpoint"


def file_identity(path: Path) -> tuple[int, str]:
    """(ss_epoch from the header, sha256 of the bytes) of one complete checkpoint file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        epoch = int((f.metadata() or {})["ss_epoch"])
    return epoch, hashlib.sha256(path.read_bytes()).hexdigest()


def appeared(files: list[Path]) -> dict[int, str]:
    """epoch -> sha256 for the checkpoint files a run wrote (one file per epoch)."""
    out: dict[int, str] = {}
    for path in files:
        epoch, sha = file_identity(path)
        assert epoch not in out, f"two files claim epoch {epoch}"
        out[epoch] = sha
    return out


def git_commits(repo: Path) -> list[dict[str, str]]:
    """Every commit: hash, subject, the checkpoint trailer, the files it touched."""
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%x1e%H%x1f%s%x1f%B%x1f",
                          "--name-only"], capture_output=True, text=True, check=True).stdout
    commits = []
    for chunk in out.split("\x1e")[1:]:
        sha, subject, body, names = chunk.split("\x1f")
        trailer = next((line.split(":", 1)[1].strip() for line in body.splitlines()
                        if line.startswith(TRAILER + ":")), "")
        commits.append({"sha": sha, "subject": subject, "trailer": trailer,
                        "files": "\n".join(n for n in names.splitlines() if n.strip())})
    return commits


@dataclass
class LedgerReport:
    epochs: int = 0
    commits: int = 0
    report_commits: int = 0
    decisions_acted: int = 0
    supabase_rows: int = 0
    duplicate_deliveries: int = 0
    alerts_delivered: int = 0
    notes: list[str] = field(default_factory=list)


def _content_key(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "evaluated_at"}, sort_keys=True)


def decision_alert_states(store: Store, run: str) -> dict[str, str]:
    """Outbox status of each queued alert, keyed "<criterion>:<epoch>" (the dedupe keys are
    "<kind>:<criterion>:<epoch>")."""
    return {str(k).split(":", 1)[1]: st for k, st in store.conn.execute(
        "SELECT json_extract(payload_json, '$.dedupe_key'), status FROM outbox "
        "WHERE run=? AND channel='alert'", (run,)).fetchall() if k}


def alerting_decisions(evaluations: list[Evaluation]) -> list[tuple[int, Decision]]:
    """(epoch, decision) for each recorded decision that calls for an alert
    (`Decision.alert_kind`, the daemon's own reading)."""
    return [(e.epoch, d) for e in evaluations for d in e.decisions if d.alert_kind is not None]


def check_ledger(config: Any, expected: dict[int, str], services: Any | None = None,
                 kill_times: list[float] | None = None) -> LedgerReport:
    """Assert the ledger for `config`'s run (a loaded WatchConfig). `expected` maps each epoch
    that appeared to the sha256 of its file. `services` (tests.chaos.rig.Services) adds the
    Supabase and alert checks; `kill_times` (time.time() of each SIGKILL) explains a row
    delivered twice: only a daemon killed between the delivery and its bookkeeping may resend."""
    run = config.run.name
    report = LedgerReport(epochs=len(expected))
    with Store(config.state_db) as s:
        checkpoints = s.checkpoints(run)
        evaluations = s.evaluations(run)
        outbox = s.outbox_counts(run)
        run_row = s.run_row(run)
        stop_requests = s.stop_requests(run)
        alert_states = decision_alert_states(s, run)

    # (a) the state database: one evaluated checkpoint and one evaluation per epoch
    by_sha = {c.sha256: c for c in checkpoints}
    assert len(by_sha) == len(checkpoints)
    evaluated = sorted(c.epoch for c in checkpoints if c.status == "evaluated")
    assert evaluated == sorted(expected), f"evaluated epochs {evaluated}, expected {sorted(expected)}"
    for epoch, sha in expected.items():
        ck = by_sha.get(sha)
        assert ck is not None, f"epoch {epoch} ({sha[:12]}) is not in the state database"
        assert ck.epoch == epoch and ck.status == "evaluated", (epoch, ck)
    commit_of: dict[int, str] = {}
    for epoch, sha in expected.items():
        rows = [e for e in evaluations if e.sha256 == sha]
        assert len(rows) == 1, f"epoch {epoch}: {len(rows)} evaluation rows"
        commit = rows[0].git_commit
        assert commit, f"epoch {epoch}: evaluation without a commit"
        commit_of[epoch] = commit
    assert len(evaluations) == len(expected), [e.epoch for e in evaluations]

    # (b) git: exactly one commit per epoch, carrying that checkpoint, and nothing else
    commits = git_commits(config.results_repo)
    report.commits = len(commits)
    for epoch, sha in expected.items():
        mine = [c for c in commits if c["subject"].startswith(f"{run} epoch {epoch}:")]
        assert len(mine) == 1, f"epoch {epoch}: {len(mine)} commits: {[c['subject'] for c in mine]}"
        assert mine[0]["trailer"] == sha, (epoch, mine[0]["trailer"], sha)
        assert mine[0]["sha"] == commit_of[epoch], (epoch, mine[0]["sha"], commit_of[epoch])
        folder = f"{config.results.dir}/{run}/epoch-{epoch:03d}/metrics.json"
        assert folder in mine[0]["files"], (epoch, mine[0]["files"])
    epoch_commits = [c for c in commits if re.fullmatch(r"[0-9a-f]{64}", c["trailer"])]
    assert len(epoch_commits) == len(expected), [c["subject"] for c in epoch_commits]
    # Anything else is the run's final report: once the run is over, exactly one.
    others = [c for c in commits if c not in epoch_commits]
    assert all(c["trailer"] == f"report:{run}" for c in others), [c["subject"] for c in others]
    final = run_row is not None and run_row.status in ("stopped", "finished", "failed")
    assert len(others) == (1 if final else 0), (run_row, [c["subject"] for c in others])
    report.report_commits = len(others)

    # (d) every decision was acted on: a failed stop rule has its stop request (the first
    # one stands for later epochs), a failed stop or alert rule its alert, delivered
    fails = alerting_decisions(evaluations)
    asked = [r.epoch for r in stop_requests if r.epoch is not None]
    for epoch, d in fails:
        if d.stops:
            assert any(a <= epoch for a in asked), f"epoch {epoch}: stop decision without a stop request"
    report.decisions_acted = len(fails)
    if services is None:
        return report
    for epoch, d in fails:
        assert alert_states.get(f"{d.criterion}:{epoch}") == "delivered", \
            (epoch, d.criterion, alert_states)
    # (c) Supabase: one row per (run, epoch) naming that checkpoint and commit; each content
    # applied once (a repeat only when a kill fell between the delivery and its record)
    assert outbox.get("supabase", {}).get("pending", 0) == 0, outbox
    assert outbox.get("supabase", {}).get("dead", 0) == 0, outbox
    rows = services.epoch_rows(run)
    report.supabase_rows = len(rows)
    assert [r[0] for r in rows] == sorted(expected), [r[0] for r in rows]
    for epoch, git_commit, checkpoint_sha, _metrics in rows:
        assert checkpoint_sha == expected[epoch], (epoch, checkpoint_sha)
        assert git_commit == commit_of[epoch], (epoch, git_commit, commit_of[epoch])
    # The run's row says what the state database says (a restart must not undo the end).
    remote = services.run_row(run)
    assert run_row is not None and remote is not None, (run_row, remote)
    assert remote == (run_row.status, run_row.verdict, run_row.best_epoch), (remote, run_row)
    api = services.api
    seen: dict[tuple[int, str], float] = {}
    for (table, row), at in zip(api.applied, api.applied_at, strict=True):
        if table != "epoch_evaluations" or row["run_name"] != run:
            continue
        key = (row["epoch"], _content_key(row))
        if key in seen:
            report.duplicate_deliveries += 1
            explained = any(seen[key] <= k <= at for k in (kill_times or []))
            assert explained, f"epoch {row['epoch']} delivered twice with no daemon kill between"
        seen[key] = at
    contents = {(e, c) for e, c in seen}
    assert {e for e, _ in contents} == set(expected)
    # alerts: everything queued was delivered (none given up), and each arrived
    assert outbox.get("alert", {}).get("pending", 0) == 0, outbox
    assert outbox.get("alert", {}).get("dead", 0) == 0, outbox
    report.alerts_delivered = len(services.delivered_alerts())
    assert report.alerts_delivered >= outbox.get("alert", {}).get("delivered", 0)
    return report


def secrets_nowhere(secrets: list[str], root: Path, repo: Path, services: Any | None) -> int:
    """Assert no secret appears in any file under root (logs, state database, results, the
    git objects) nor in the Supabase tables; returns the number of files searched."""
    searched = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            searched += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}... found in {path}"
    history = subprocess.run(["git", "-C", str(repo), "log", "-p", "--all", "--format=%H%n%B"],
                             capture_output=True, check=True).stdout
    for secret in secrets:
        assert secret.encode() not in history, "secret in the git history"
    if services is not None:
        import psycopg

        with psycopg.connect(services.dsn) as conn:
            dump = json.dumps([conn.execute(f"SELECT to_jsonb(t)::text FROM {t} t").fetchall()
                               for t in ("training_runs", "epoch_evaluations")])
        for secret in secrets:
            assert secret not in dump, "secret in a Supabase row"
    return searched
