"""`epochwatch runs [--config FILE ...] [--source local|supabase] [--json]`: every run with
its state, epochs evaluated, first right-background epoch, best epoch and score, decision,
host and results location. Local: the state stores of the given configs. Supabase: every
run of the team (a read-only key is enough). Never imports torch."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from watcher.commands._common import load, runs_of_stores
from watcher.errors import CommandError
from watcher.report.runs import (
    RunRecord,
    load_store_records,
    render,
    sort_records,
    summary,
    to_json,
)


def choose_source(requested: str | None, local_given: bool) -> str:
    """--source as given; else local when configs/stores are named or Supabase is not set up."""
    from watcher.report.remote import configured

    if requested:
        return requested
    return "local" if local_given or not configured() else "supabase"


def local_records(configs: list[str], stores: list[str] | None = None) -> list[RunRecord]:
    paths = [load(c).state_db for c in configs] + [Path(s) for s in stores or []]
    if not paths:
        raise CommandError("give --config FILE (or set SUPABASE_URL and a key for --source supabase)")
    return runs_of_stores(paths, load_store_records, lambda r: r.history.name,
                          ": has the daemon run yet?")


def supabase_records() -> list[RunRecord]:
    from watcher.report.remote import RemoteError, SupabaseReader, load_records

    try:
        with SupabaseReader.from_env() as reader:
            return load_records(reader)
    except RemoteError as exc:
        raise CommandError(str(exc)) from None


def run(args: Namespace) -> int:
    source = choose_source(args.source, bool(args.config))
    records = supabase_records() if source == "supabase" else local_records(args.config)
    rows = [summary(r) for r in sort_records(records) if r.history.kind != "baseline"]
    print(to_json(rows) if args.json else render(rows))
    return 0
