"""Supabase logging: table rows from the daemon's data, the outbox entries that carry them,
and the sink that upserts them through supabase-py's PostgREST client.

The daemon never calls Supabase itself: it enqueues rows in the state database
(`enqueue_run`, `enqueue_epoch`, `enqueue_contact_sheet`) and the outbox worker
(`watcher.publish.outbox`) delivers them, in order, retrying after outages. Upserts are keyed
on `training_runs(run_name)` and `epoch_evaluations(run_name, epoch)`, so a retried request
never duplicates a row. The schema lives in `watcher/migrations/*.sql`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from watcher.logs import redact
from watcher.metrics import BACKGROUND_METRIC, SAMPLE_METRIC_RANGES

if TYPE_CHECKING:  # supabase-py is imported only when a sink is really built
    from watcher.store import Store

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

RUNS_TABLE = "training_runs"
EPOCHS_TABLE = "epoch_evaluations"
REVIEWS_TABLE = "epoch_reviews"
RUNS_CONFLICT = "run_name"
EPOCHS_CONFLICT = "run_name,epoch"
REVIEWS_CONFLICT = "run_name,epoch"
RUN_STATUSES = ("running", "stopped", "finished", "failed")
# the epoch_evaluations columns that are aggregate metrics as they are (clamped to their range)
EPOCH_METRIC_COLUMNS = ("visual_score", "style_score", "prompt_score", "overall_score",
                        "color_accuracy", "style_quality")
PARAM_GROUPS = ("architecture", "hyperparameters", "data", "augmentation")
# Migration 0004: where a row was made. Sent only when known, so a row from an older daemon
# (or a baseline) keeps whatever the table holds.
RUN_HOST_COLUMNS = ("host", "gpu_name", "gpu_memory_mb", "results_location", "results_remote")
EPOCH_HOST_COLUMNS = ("host", "gpu_name", "gpu_memory_mb")

_HEX = re.compile(r"^#[0-9a-f]{6}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_ANY_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s'\"<>]+", re.IGNORECASE)


class SinkConfigError(ValueError):
    """SUPABASE_URL / SUPABASE_KEY are set but unusable (message names the variable only)."""


class DeliveryError(Exception):
    """A delivery failed; the message is safe to log and store (no keys, no URLs)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def migration_files() -> list[Path]:
    """The SQL migrations in the order they must be applied (each one is re-runnable)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def safe_error(exc: BaseException, limit: int = 300) -> str:
    """One line describing exc without secrets or URLs, for logs and `outbox.last_error`."""
    if isinstance(exc, DeliveryError):
        text = str(exc)
    else:
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", None)
        if message is not None or code is not None:  # postgrest APIError: code + message only
            text = f"{type(exc).__name__}: {code or ''} {message or ''}".strip()
        else:
            text = f"{type(exc).__name__}: {exc}"
    text = _ANY_URL.sub(r"\1<redacted>", redact(text))
    text = " ".join(text.split())
    return text[:limit]


# ---- rows ------------------------------------------------------------------------------------
def _clean_text(text: str) -> str:
    """What PostgreSQL text and jsonb accept: no NUL, no lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _json_safe(value: Any) -> Any:
    """JSON-ready copy PostgreSQL accepts: NaN/inf become null, strings are cleaned,
    tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (int, bool)):
        return value
    return _clean_text(str(value))


def _number(value: Any, low: float, high: float | None = None) -> float | None:
    """A finite number clamped to the column's range, or None. The raw value stays in
    `metrics`; clamping keeps one odd value from blocking the delivery queue for good."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    v = max(low, v)
    return min(high, v) if high is not None else v


def _metric(aggregate: Mapping[str, Any], name: str) -> float | None:
    """An aggregate metric clamped to its range (watcher.metrics, the CHECKs of migration 0002)."""
    return _number(aggregate.get(name), *SAMPLE_METRIC_RANGES[name])


def _hex(value: Any) -> str | None:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    return text if _HEX.match(text) else None


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_row(
    run_name: str,
    status: str,
    params: Mapping[str, Any],
    verdict: str | None = None,
    best_epoch: int | None = None,
    host: Mapping[str, Any] | None = None,
    judged_by: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `training_runs` row. params is the plan's "Parameters to Track" object
    (`WatchConfig.params()`); groups other than the four known ones go to `extra_params`.
    host (`watcher.publish.host.describe`) adds the host, GPU and results columns; judged_by
    (`Store.judged_by_json`) the rules the run is judged by (migration 0005)."""
    if not run_name:
        raise ValueError("run_name must not be empty")
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
    if best_epoch is not None and (isinstance(best_epoch, bool) or int(best_epoch) < 0):
        raise ValueError(f"best_epoch must be a non-negative integer, not {best_epoch!r}")
    groups = {g: dict(params.get(g) or {}) for g in PARAM_GROUPS}
    extra = {k: v for k, v in params.items() if k not in PARAM_GROUPS and k != "run_name"}
    return cast("dict[str, Any]", _json_safe({
        "run_name": run_name,
        "status": status,
        **groups,
        "extra_params": extra,
        "verdict": verdict,
        "best_epoch": int(best_epoch) if best_epoch is not None else None,
        **_host_columns(host, RUN_HOST_COLUMNS),
        **({"judged_by": dict(judged_by)} if judged_by is not None else {}),
    }))


def _host_columns(host: Mapping[str, Any] | None, columns: Sequence[str]) -> dict[str, Any]:
    if not host:
        return {}
    out = {c: host.get(c) for c in columns}
    memory = out.get("gpu_memory_mb")
    if "gpu_memory_mb" in out and not (isinstance(memory, int) and not isinstance(memory, bool)
                                       and memory >= 0):
        out["gpu_memory_mb"] = None
    return out


def epoch_row(
    run_name: str,
    epoch: int,
    metrics: Mapping[str, Any],
    git_commit: str | None,
    decision: str,
    host: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An `epoch_evaluations` row from one metrics.json (shape in docs/INTERFACES.md)."""
    if isinstance(epoch, bool) or int(epoch) < 0:
        raise ValueError(f"epoch must be a non-negative integer, not {epoch!r}")
    agg: Mapping[str, Any] = metrics.get("aggregate") or {}
    checkpoint: Mapping[str, Any] = metrics.get("checkpoint") or {}
    sha = str(checkpoint.get("sha256") or "").lower()
    rate = _metric(agg, BACKGROUND_METRIC)
    commit = (git_commit or "").strip().lower()
    observations = [
        str(d.get("message")).strip()
        for d in metrics.get("decisions") or []
        if isinstance(d, Mapping) and d.get("message")
    ]
    n_images = agg.get("n_images")
    return cast("dict[str, Any]", _json_safe({
        "run_name": run_name,
        "epoch": int(epoch),
        "checkpoint_sha256": sha if _SHA256.match(sha) else None,
        "checkpoint_file": Path(str(checkpoint["path"])).name if checkpoint.get("path") else None,
        **{name: _metric(agg, name) for name in EPOCH_METRIC_COLUMNS},
        "background_hex": _hex(agg.get("background_hex")),
        BACKGROUND_METRIC: rate,
        # "Background match" for the epoch: most images whose prompt names a background got it.
        "background_match": None if rate is None else rate >= 0.5,
        "unique_colors": _metric(agg, "unique_colors"),
        "n_images": int(n_images) if isinstance(n_images, int) and n_images >= 0 else None,
        "issues": sorted({str(i) for i in agg.get("issues") or []}),
        "observations": "\n".join(observations),
        "decision": decision or "continue",
        "metrics": dict(metrics),
        "git_commit": commit if _COMMIT.match(commit) else None,
        "evaluated_at": _utc_now_iso(),
        **_host_columns(host, EPOCH_HOST_COLUMNS),
    }))


def _digest(row: Mapping[str, Any], ignore: Sequence[str] = ()) -> str:
    body = {k: v for k, v in row.items() if k not in ignore}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def enqueue_run(
    store: Store,
    run_name: str,
    status: str,
    params: Mapping[str, Any],
    verdict: str | None = None,
    best_epoch: int | None = None,
    host: Mapping[str, Any] | None = None,
) -> bool:
    """Queue the run's current row. Every call is delivered, in order, so the table ends
    with the latest state even when a status returns to an earlier value."""
    row = run_row(run_name, status, params, verdict, best_epoch, host,
                  judged_by=store.judged_by_json(run_name))
    key = f"{RUNS_TABLE}:{run_name}:{time.time_ns()}"
    payload = {"table": RUNS_TABLE, "on_conflict": RUNS_CONFLICT, "row": row}
    return store.enqueue(run_name, "supabase", key, payload)


def enqueue_epoch(
    store: Store,
    run_name: str,
    epoch: int,
    metrics: Mapping[str, Any],
    git_commit: str | None,
    decision: str,
    host: Mapping[str, Any] | None = None,
) -> bool:
    """Queue one epoch's row. The same content queued again (e.g. after a daemon restart)
    is not sent twice; changed content (a commit now known, a re-evaluation) is."""
    row = epoch_row(run_name, epoch, metrics, git_commit, decision, host)
    key = f"{EPOCHS_TABLE}:{run_name}:{int(epoch)}:{_digest(row, ignore=('evaluated_at',))}"
    payload = {"table": EPOCHS_TABLE, "on_conflict": EPOCHS_CONFLICT, "row": row}
    return store.enqueue(run_name, "supabase", key, payload)


def enqueue_review(store: Store, run_name: str, epoch: int, row: Mapping[str, Any]) -> bool:
    """Queue a person's review (`epoch_reviews` row: visual/style/prompt/overall scores,
    notes, reviewed_at). A corrected review is sent again, a repeated one is not."""
    clean = _json_safe({**row, "run_name": run_name, "epoch": int(epoch)})
    key = f"{REVIEWS_TABLE}:{run_name}:{int(epoch)}:{_digest(clean, ignore=('reviewed_at',))}"
    payload = {"table": REVIEWS_TABLE, "on_conflict": REVIEWS_CONFLICT, "row": clean}
    return store.enqueue(run_name, "supabase", key, payload)


def enqueue_contact_sheet(
    store: Store, run_name: str, epoch: int, image_path: str | Path, bucket: str
) -> bool:
    """Queue the upload of an epoch's contact sheet to Supabase Storage
    (object `<run>/epoch-NNN/<file name>`, replaced if it exists)."""
    path = Path(image_path)
    object_path = f"{run_name}/epoch-{int(epoch):03d}/{path.name}"
    payload = {
        "bucket": bucket,
        "object_path": object_path,
        "file": str(path.resolve()),
        "content_type": "image/png" if path.suffix.lower() == ".png" else "image/jpeg",
    }
    return store.enqueue(run_name, "storage", f"{bucket}/{object_path}", payload)


# ---- the sink ---------------------------------------------------------------------------------
class SupabaseSink:
    """Upserts rows and uploads files with supabase-py; every HTTP call has timeout_s."""

    def __init__(self, url: str, key: str, timeout_s: float = 10.0) -> None:
        # Imported only when Supabase is configured: `import supabase` takes ~1.1 s here.
        import httpx
        from supabase import ClientOptions, create_client

        if not re.match(r"^https?://[^\s/]+", url):
            raise SinkConfigError("SUPABASE_URL must start with http:// or https://")
        self.timeout_s = float(timeout_s)
        # One httpx client with an explicit timeout, shared by PostgREST and Storage: the
        # postgrest_client_timeout option is truncated to whole seconds, this is not.
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=True)
        options = ClientOptions(
            httpx_client=self._http,
            postgrest_client_retry=False,  # the outbox owns retries
            auto_refresh_token=False,
            persist_session=False,
        )
        self._client = create_client(url, key, options=options)

    @classmethod
    def from_env(
        cls, timeout_s: float = 10.0, env: Mapping[str, str] | None = None
    ) -> SupabaseSink | None:
        """A sink from SUPABASE_URL and SUPABASE_KEY, or None when neither is set."""
        env = os.environ if env is None else env
        url = env.get("SUPABASE_URL", "").strip()
        key = env.get("SUPABASE_KEY", "").strip()
        if not url and not key:
            return None
        if not url:
            raise SinkConfigError("SUPABASE_KEY is set but SUPABASE_URL is not")
        if not key:
            raise SinkConfigError("SUPABASE_URL is set but SUPABASE_KEY is not")
        try:
            return cls(url, key, timeout_s)
        except SinkConfigError:
            raise
        except Exception as exc:
            raise SinkConfigError(f"cannot build the Supabase client: {safe_error(exc)}") from None

    def upsert(self, table: str, rows: Sequence[Mapping[str, Any]], on_conflict: str) -> None:
        """POST /rest/v1/<table>?on_conflict=... with Prefer: resolution=merge-duplicates."""
        from postgrest.types import ReturnMethod  # ~0.4 s: only once something is sent

        try:
            self._client.table(table).upsert(
                [dict(r) for r in rows], on_conflict=on_conflict,
                returning=ReturnMethod.minimal,  # type: ignore[arg-type]  # untyped StrEnum backport on 3.10
            ).execute()
        except Exception as exc:
            raise DeliveryError(safe_error(exc)) from None

    def upload(
        self, bucket: str, object_path: str, file_path: str | Path, content_type: str = "image/png"
    ) -> None:
        """Upload (or replace) one file in a Storage bucket."""
        path = Path(file_path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeliveryError(f"file unreadable: {path.name}: {exc.strerror}", permanent=True) from None
        try:
            self._client.storage.from_(bucket).upload(
                object_path, data, {"content-type": content_type, "upsert": "true"}
            )
        except Exception as exc:
            raise DeliveryError(safe_error(exc)) from None

    def close(self) -> None:
        self._http.close()
