"""`epochwatch report --config FILE`: report.md, grid.png, curves.png (loss.png with training
figures) for the run,
committed to the results repository when they changed (or a line saying why not)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from launcher.preflight import check_writable
from watcher.commands._common import load
from watcher.epoch.decide import Rule
from watcher.errors import CommandError
from watcher.progress import Batch
from watcher.report.history import load_run
from watcher.report.plan import finished, verdict_of
from watcher.report.report import write_report
from watcher.store import Store


def run(args: Namespace) -> int:
    cfg = load(args.config)
    if not cfg.state_db.exists():
        raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")
    check_writable(cfg, "results.repo")

    with Store(cfg.state_db) as store:
        if store.run_row(cfg.run.name) is None:
            raise CommandError(f"run {cfg.run.name} is not in {cfg.state_db}")
        with Batch(2, "steps", "writing the report") as batch:
            path = write_report(cfg, store)
            batch.advance()
            run_history = load_run(store, cfg.run.name)
            names = ("grid.png", "curves.png", "loss.png", "report.md")  # loss.png: with training figures
            paths = [p for p in (path.parent / name for name in names) if p.exists()]
            verdict = verdict_of(run_history, [Rule.from_config(c) for c in cfg.criteria], cfg.plan)
            committed = _commit(cfg.results_repo, paths, cfg.run.name,
                                verdict.verdict)
            batch.advance()
    so_far = "" if finished(run_history) or verdict.verdict == "pending" else (
        f" so far ({len(run_history.epochs)} of {run_history.max_epochs or '?'} epochs)")
    best = verdict.best_epoch
    print(f"verdict: {verdict.verdict}{so_far}; best epoch: {'-' if best is None else best}")
    for p in paths:
        print(p)
    print(committed)
    return 0


def _commit(repo_path: Path, paths: list[Path], run: str, verdict: str) -> str:
    """Commit the report if it changed; one line saying what happened."""
    import git

    from watcher.publish.gitrepo import GitPublishError, ResultsRepo

    try:
        with git.Repo(repo_path) as repo:
            rel = [str(p.resolve().relative_to(repo_path.resolve())) for p in paths]
            if not repo.git.status("--porcelain", "--", *rel).strip():
                last = repo.git.log("-n", "1", "--format=%h", "--", *rel).strip()
                return f"unchanged since commit {last}" if last else "not committed: nothing to commit"
        sha = ResultsRepo(repo_path).commit_paths(paths, f"{run} report: {verdict}",
                                                  "Report written by epochwatch report.", f"report:{run}")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return f"not committed: {repo_path} is not a git repository"
    except (git.GitCommandError, GitPublishError, ValueError) as exc:
        return f"not committed: {' '.join(str(exc).split())}"
    return f"committed {sha[:7]} in {repo_path}"
