"""The state database's rows as typed records: what `watcher.store.Store` returns.

Each record is a frozen dataclass whose fields are the table's columns (JSON columns come back
parsed: `metadata_json` -> `metadata`, `metrics_json` -> `metrics`, ...), built by `from_row`
from a `sqlite3.Row`. `to_dict()` gives the row as the dict the store used to return, key for
key and in the same order: `status --json` prints stop requests and rejected files that way.

Imports stay light (stdlib, `watcher.metrics` and `watcher.rules`): `status` reads these and must start fast.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict, TypeVar

from typing_extensions import NotRequired

from watcher.metrics import EpochAggregate
from watcher.rules import Decision, decisions_from_dicts

# a checkpoint's (or sample-source epoch's) state row, and a run's, in the state database
CheckpointStatus = Literal["pending", "evaluating", "evaluated", "failed"]
RunStatus = Literal["running", "stopping", "stopped", "finished", "failed"]


class EpochMetrics(TypedDict):
    """metrics.json, one per evaluated epoch (docs/INTERFACES.md); `aggregate` is
    `evaluators.aggregate_epoch` of `images`, `decisions` are `Decision.to_dict()`s."""

    run: str
    epoch: int
    checkpoint: dict[str, Any]
    images: list[dict[str, Any]]
    aggregate: dict[str, Any]
    decisions: list[dict[str, Any]]
    review_prompts: list[str]
    timing: dict[str, float]
    training: NotRequired[dict[str, Any]]  # the trainer's figures then (watcher.training)


_R = TypeVar("_R", bound="_Row")


@dataclass(frozen=True)
class _Row:
    """`from_row` for a record whose fields are its table's columns, as they are; `to_dict`:
    the record as the row's dict (dataclass fields in column order)."""

    @classmethod
    def from_row(cls: type[_R], row: sqlite3.Row) -> _R:
        return cls(**dict(row))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Checkpoint(_Row):
    id: int
    run: str
    path: str
    epoch: int | None
    sha256: str
    size: int
    session_id: str | None
    metadata: dict[str, str]
    status: CheckpointStatus
    error: str | None
    attempts: int
    detected_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Checkpoint:
        return cls(
            id=row["id"], run=row["run"], path=row["path"], epoch=row["epoch"],
            sha256=row["sha256"], size=row["size"], session_id=row["session_id"],
            metadata=json.loads(row["metadata_json"]), status=row["status"],
            error=row["error"], attempts=row["attempts"], detected_at=row["detected_at"],
        )


@dataclass(frozen=True)
class RunRow(_Row):
    name: str
    config_path: str | None
    params: dict[str, Any]  # the config's parameters (`WatchConfig.params()`)
    status: RunStatus
    verdict: str | None
    best_epoch: int | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRow:
        return cls(name=row["name"], config_path=row["config_path"],
                   params=json.loads(row["params_json"] or "{}"), status=row["status"],
                   verdict=row["verdict"], best_epoch=row["best_epoch"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


@dataclass(frozen=True)
class RejectedFile(_Row):
    """A refused file (not safetensors, truncated for good, a foreign run, ...)."""

    id: int
    run: str
    path: str
    size: int | None
    mtime: float | None
    reason: str
    created_at: float


@dataclass(frozen=True)
class Evaluation(_Row):
    """An evaluated checkpoint (with its checkpoint's path and content hash)."""

    checkpoint_id: int
    run: str
    epoch: int
    result_dir: str
    git_commit: str | None  # None until the results folder is committed
    created_at: float
    path: str
    sha256: str
    metrics: EpochMetrics

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Evaluation:
        return cls(checkpoint_id=row["checkpoint_id"], run=row["run"], epoch=row["epoch"],
                   result_dir=row["result_dir"], git_commit=row["git_commit"],
                   created_at=row["created_at"], path=row["path"], sha256=row["sha256"],
                   metrics=json.loads(row["metrics_json"]))

    @property
    def aggregate(self) -> EpochAggregate:
        return EpochAggregate.from_dict(self.metrics.get("aggregate"))

    @property
    def decisions(self) -> list[Decision]:
        """The decisions recorded with this evaluation (its metrics.json's)."""
        return decisions_from_dicts(self.metrics.get("decisions"))


@dataclass(frozen=True)
class DecisionRow:
    """A stored decision: the rule's `Decision` and where it was made."""

    id: int
    run: str
    epoch: int
    checkpoint_id: int | None
    decision: Decision
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DecisionRow:
        fields = dict(row)
        fields["evidence"] = json.loads(fields.pop("evidence_json"))
        return cls(id=row["id"], run=row["run"], epoch=row["epoch"],
                   checkpoint_id=row["checkpoint_id"], decision=Decision.from_dict(fields),
                   created_at=row["created_at"])

    def to_dict(self) -> dict[str, Any]:
        """The table's columns, `evidence` parsed and last (as the store always gave it)."""
        d = self.decision.to_dict()
        evidence = d.pop("evidence")
        return {"id": self.id, "run": self.run, "epoch": self.epoch,
                "checkpoint_id": self.checkpoint_id, **d, "created_at": self.created_at,
                "evidence": evidence}


# the trainer states after which it runs no more (TrainerRow.state)
TRAINER_ENDED = frozenset({"exited", "stopped", "killed", "crashed"})


@dataclass(frozen=True)
class TrainerRow(_Row):
    """The trainer process the launcher started; pid + start time identify it."""

    run: str
    pid: int | None = None
    pgid: int | None = None
    start_time: float | None = None  # process start time (psutil create_time)
    command: list[str] | None = None  # the argv it was started with
    cwd: str | None = None
    log_path: str | None = None
    state: str = "unknown"  # starting | running | exited | stopped | killed | crashed
    exit_code: int | None = None
    cause: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TrainerRow:
        fields = dict(row)
        command = fields.pop("command_json")
        return cls(**fields, command=json.loads(command) if command else None)


@dataclass(frozen=True)
class DaemonRow(_Row):
    run: str
    pid: int | None = None
    start_time: float | None = None
    heartbeat_at: float | None = None
    state: str | None = None  # starting | idle | evaluating | stopped
    gpu_memory_bytes: int | None = None


@dataclass(frozen=True)
class StopRequest(_Row):
    id: int
    run: str
    epoch: int | None  # None: not tied to an epoch (a termination signal)
    reason: str
    requested_at: float
    handled_at: float | None
    result: str | None


@dataclass(frozen=True)
class OutboxItem(_Row):
    """A queued delivery to Supabase, git, storage or an alert target."""

    id: int
    run: str
    channel: str  # supabase | git | storage | alert
    dedupe_key: str
    status: str  # pending | delivered | dead
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None
    payload: Any  # the JSON as queued; each channel checks its shape before delivering

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxItem:
        fields = dict(row)
        fields["payload"] = json.loads(fields.pop("payload_json"))
        return cls(**fields)


@dataclass(frozen=True)
class Event(_Row):
    id: int
    run: str
    epoch: int | None
    level: str  # info | warning | error
    kind: str
    message: str
    created_at: float


@dataclass(frozen=True)
class Review(_Row):
    """A person's scores of one epoch (1-10) and notes: a row of `reviews` (the latest of each
    epoch) or of `review_history` (every one saved; its surrogate id is not kept)."""

    run: str
    epoch: int
    visual: float
    style: float
    prompt: float
    notes: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Review:
        fields = dict(row)
        fields.pop("id", None)  # review_history's
        return cls(**fields)
