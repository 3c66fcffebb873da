"""`epochwatch baselines push [--dir DIR]`: the baseline runs of configs/baselines/ sent to
Supabase once (upserts: pushing again after editing a file updates them), so that
`analyze --source supabase` on any machine sees them. Needs the service key (SUPABASE_KEY)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from watcher.errors import CommandError


def push(folder: Path | None) -> int:
    from watcher.publish.supabase import (
        EPOCHS_CONFLICT,
        EPOCHS_TABLE,
        RUNS_CONFLICT,
        RUNS_TABLE,
        DeliveryError,
        SinkConfigError,
        SupabaseSink,
    )
    from watcher.report.baselines import BaselineError, load_baselines, supabase_rows

    try:
        bases = load_baselines(folder)
        sink = SupabaseSink.from_env()
    except (BaselineError, SinkConfigError) as exc:
        raise CommandError(str(exc)) from None
    if sink is None:
        raise CommandError("Supabase is not configured: set SUPABASE_URL and SUPABASE_KEY (service key)")
    if not bases:
        raise CommandError(f"no baseline files in {folder or 'configs/baselines'}")
    try:
        for base in bases:
            run, epochs = supabase_rows(base)
            sink.upsert(RUNS_TABLE, [run], RUNS_CONFLICT)
            if epochs:
                sink.upsert(EPOCHS_TABLE, epochs, EPOCHS_CONFLICT)
            print(f"pushed baseline {base.name} ({len(epochs)} epochs)")
    except DeliveryError as exc:
        raise CommandError(f"push failed: {exc}") from None
    finally:
        sink.close()
    return 0


def run(args: Namespace) -> int:
    return push(Path(args.dir) if args.dir else None)
