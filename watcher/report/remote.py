"""Runs read back from Supabase: every team member's daemon writes there, so it is where the
runs of many hosts meet. Paginated reads through supabase-py's PostgREST client, with a key
that may be read-only (SUPABASE_READ_KEY, role `epochwatch_reader`, migration 0004).

Rows become the same `RunHistory`s a state store gives (`watcher.report.history.load_run`),
so `runs`, `analyze` and the report code cannot tell where a run came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from watcher.report.history import RunHistory
from watcher.report.runs import RunRecord
from watcher.rules import Decision
from watcher.store import judged_by_from_json

READ_KEY_ENV = "SUPABASE_READ_KEY"
PAGE_SIZE = 1000  # Supabase's default max-rows: a page never asks for more than it returns
PARAM_GROUPS = ("architecture", "hyperparameters", "data", "augmentation")
HOST_KEYS = ("host", "gpu_name", "gpu_memory_mb", "results_location", "results_remote")


class RemoteError(Exception):
    """Supabase cannot be read; the message holds no key and no URL."""


def configured(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("SUPABASE_URL", "").strip()) and bool(
        env.get(READ_KEY_ENV, "").strip() or env.get("SUPABASE_KEY", "").strip())


class SupabaseReader:
    """SELECTs, page by page, ordered on a unique key so that pages neither skip nor repeat."""

    def __init__(self, url: str, key: str, timeout_s: float = 30.0, page_size: int = PAGE_SIZE) -> None:
        import httpx
        from supabase import ClientOptions, create_client

        if not re.match(r"^https?://[^\s/]+", url):
            raise RemoteError("SUPABASE_URL must start with http:// or https://")
        self.page_size = max(1, int(page_size))
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True)
        options = ClientOptions(httpx_client=self._http, postgrest_client_retry=False,
                                auto_refresh_token=False, persist_session=False)
        self._client = create_client(url, key, options=options)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, page_size: int = PAGE_SIZE) -> SupabaseReader:
        """From SUPABASE_URL and SUPABASE_READ_KEY (else SUPABASE_KEY)."""
        env = os.environ if env is None else env
        url = env.get("SUPABASE_URL", "").strip()
        key = env.get(READ_KEY_ENV, "").strip() or env.get("SUPABASE_KEY", "").strip()
        if not url or not key:
            raise RemoteError("Supabase is not configured: set SUPABASE_URL and "
                              f"{READ_KEY_ENV} (or SUPABASE_KEY)")
        return cls(url, key, page_size=page_size)

    def rows(self, table: str, order: Sequence[str]) -> list[dict[str, Any]]:
        """Every row of `table` visible to this key, in `order`."""
        from watcher.publish.supabase import safe_error

        out: list[dict[str, Any]] = []
        while True:
            query = self._client.table(table).select("*")
            for column in order:
                query = query.order(column)
            try:
                page = query.range(len(out), len(out) + self.page_size - 1).execute().data
            except Exception as exc:
                raise RemoteError(f"cannot read {table} from Supabase: {safe_error(exc)}") from None
            out.extend(page)
            # A server may cap a page below page_size (max-rows): only an empty page ends it.
            if not page:
                return out

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SupabaseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _params(row: Mapping[str, Any]) -> dict[str, Any]:
    """The grouped parameters as `WatchConfig.params()` gave them (run_row split them)."""
    params: dict[str, Any] = {g: dict(row.get(g) or {}) for g in PARAM_GROUPS if row.get(g)}
    params.update(row.get("extra_params") or {})
    return params


def records_from_rows(runs: Sequence[Mapping[str, Any]],
                      epochs: Sequence[Mapping[str, Any]]) -> list[RunRecord]:
    """training_runs and epoch_evaluations rows -> one RunRecord per run, in row order."""
    by_run: dict[str, RunRecord] = {}
    for row in runs:
        name = str(row["run_name"])
        baseline = row.get("kind") == "baseline"
        history = RunHistory(name=name, params=_params(row), source="supabase",
                             kind="baseline" if baseline else "store",
                             status=row.get("status"), notes=str(row.get("notes") or ""),
                             stated_outcomes=dict(row.get("stated_outcomes") or {}))
        judged = judged_by_from_json(row.get("judged_by"))  # migration 0005; None before
        if judged is not None:
            history.rules, history.partial_at_least = judged
        by_run[name] = RunRecord(history=history, verdict=row.get("verdict"),
                                 host={k: row.get(k) for k in HOST_KEYS})
    for row in epochs:
        record = by_run.get(str(row["run_name"]))
        if record is None:  # a run row this key may not see: skip its epochs
            continue
        epoch = int(row["epoch"])
        metrics = row.get("metrics") or {}
        record.history.epochs[epoch] = dict(metrics.get("aggregate") or {})
        record.history.images[epoch] = list(metrics.get("images") or [])
        decided = [Decision.from_dict(d) for d in metrics.get("decisions") or [] if isinstance(d, dict)]
        if decided:  # the same decisions the state store's decisions table holds
            record.history.decisions[epoch] = decided
        record.decisions[epoch] = str(row.get("decision") or "continue")
        if row.get("git_commit"):
            record.commits[epoch] = str(row["git_commit"])
    return list(by_run.values())


def load_records(reader: SupabaseReader) -> list[RunRecord]:
    """Every run (and baseline) in Supabase with its epochs."""
    runs = reader.rows("training_runs", ["run_name"])
    epochs = reader.rows("epoch_evaluations", ["run_name", "epoch"])
    return records_from_rows(runs, epochs)
