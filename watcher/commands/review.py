"""`epochwatch review -c FILE --epoch N --visual V --style S --prompt-score P [--notes T]`:
record a person's 1-10 scores for an evaluated epoch (state store + Supabase outbox)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from argparse import Namespace
from datetime import datetime, timezone
from typing import Any

from watcher.commands._common import load
from watcher.errors import CommandError
from watcher.publish import supabase
from watcher.report.calibration import MIN_REVIEWS, NARROW_SPREAD, calibrate
from watcher.report.history import load_run
from watcher.store import Store

REVIEWS_TABLE = "epoch_reviews"
REVIEWS_CONFLICT = "run_name,epoch"
MAX_NOTES = 2000
# Terminal escape sequences, other control characters and bidi overrides: a note is printed
# raw by `status`, so none of these may reach the store (web form and CLI alike).
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_]?)")
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_notes(text: str) -> str:
    """A reviewer's notes as stored: escape sequences, control characters and bidi
    overrides removed, whitespace runs made one space."""
    return " ".join(_INVISIBLE.sub(" ", _ESCAPE_SEQUENCE.sub("", str(text))).split())


def _score(name: str, value: float) -> float:
    if not math.isfinite(value) or not 1.0 <= value <= 10.0:
        raise CommandError(f"--{name} must be a score from 1 to 10, not {value:g}")
    return float(value)


def review_row(run: str, epoch: int, visual: float, style: float, prompt: float, notes: str) -> dict[str, Any]:
    return {"run_name": run, "epoch": epoch, "visual_score": visual, "style_score": style,
            "prompt_score": prompt, "overall_score": round((visual + style + prompt) / 3, 4),
            "notes": notes, "reviewed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def enqueue_review(store: Store, run: str, epoch: int, row: dict[str, Any]) -> bool:
    """Queue the review for Supabase through the outbox; `watcher.publish.supabase` may
    offer its own `enqueue_review`, which then wins."""

    own = getattr(supabase, "enqueue_review", None)
    if callable(own):
        return bool(own(store, run, epoch, row))
    # The content digest is part of the key: a corrected review of the same epoch is sent
    # again (the outbox ignores a key it has delivered), a repeated one is not.
    body = {k: v for k, v in row.items() if k != "reviewed_at"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    payload = {"table": REVIEWS_TABLE, "on_conflict": REVIEWS_CONFLICT, "row": row}
    return store.enqueue(run, "supabase", f"review:{run}:{epoch}:{digest}", payload)


def _prompt_score(args: Namespace) -> float:
    """--prompt-score, or the old spelling --prompt (still accepted, with a note)."""
    old = getattr(args, "prompt_deprecated", None)
    new = getattr(args, "prompt_score", None)
    if old is not None:
        if new is not None:
            raise CommandError("give --prompt-score only (--prompt is its old spelling)")
        print("epochwatch review: note: --prompt is deprecated; use --prompt-score", file=sys.stderr)
        return _score("prompt-score", old)
    if new is None:
        raise CommandError("--prompt-score P is required (the prompt's score, 1-10)")
    return _score("prompt-score", new)


def run(args: Namespace) -> int:
    visual, style = (_score(n, getattr(args, n)) for n in ("visual", "style"))
    prompt = _prompt_score(args)
    if args.epoch < 0:
        raise CommandError(f"--epoch must be 0 or more, not {args.epoch}")
    notes = clean_notes(args.notes)
    if len(notes) > MAX_NOTES:
        raise CommandError(f"--notes is {len(notes)} characters; at most {MAX_NOTES}")
    cfg = load(args.config)
    if not cfg.state_db.exists():
        raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")
    name = cfg.run.name
    with Store(cfg.state_db) as store:
        evaluated = sorted({e.epoch for e in store.evaluations(name)})
        if args.epoch not in evaluated:
            have = ", ".join(map(str, evaluated)) or "none yet"
            raise CommandError(f"epoch {args.epoch} of {name} has no evaluation (evaluated: {have})")
        earlier = store.review_history(name, args.epoch)
        store.save_review(name, args.epoch, visual, style, prompt, notes)
        enqueue_review(store, name, args.epoch, review_row(name, args.epoch, visual, style, prompt, notes))

        history = load_run(store, name)
    print(f"review saved: {name} epoch {args.epoch}: visual {visual:g}, style {style:g}, "
          f"prompt {prompt:g}")
    if earlier:  # kept, not replaced: the latest counts
        print(f"{len(earlier)} earlier review(s) of epoch {args.epoch} kept (this one counts): "
              + "; ".join(f"{r.visual:g}/{r.style:g}/{r.prompt:g}" for r in earlier))
    fits = calibrate(history)
    if not fits:
        print(f"{len(history.reviews)} reviewed epoch(s); calibration starts at {MIN_REVIEWS}")
    for c in fits:
        narrow = (f"; auto scores span only {c.auto_spread:.2f}: unreliable"
                  if c.auto_spread < NARROW_SPREAD else "")
        print(f"calibration {c.score}: human = {c.slope:.2f} x auto {c.intercept:+.2f}; "
              f"error {c.mae_raw:.2f} -> {c.mae_fit:.2f} (leave-one-out {c.mae_loo:.2f}, n={c.n}){narrow}")
    return 0
