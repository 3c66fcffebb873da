"""The results git repository: one commit per evaluated epoch, exactly once.

Exactly-once across crashes: each commit carries a trailer `Epochwatch-Checkpoint: <sha256>`.
Before committing, the log is searched for that trailer, so a commit made just before a crash
(and not yet recorded in the state database) is found instead of made twice.

GitPython leaks `git cat-file` helper processes in long-lived programs when Repo objects
live on: every operation here opens a Repo and closes it at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

TRAILER = "Epochwatch-Checkpoint"


class GitPublishError(Exception):
    """Committing or pushing failed for a reason that retrying soon will not fix."""


def _lock_held(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, git.GitCommandError) and (
        "index.lock" in text or "could not lock" in text or "Unable to create" in text
    )


@dataclass(frozen=True)
class PushResult:
    ok: bool
    detail: str


class ResultsRepo:
    def __init__(self, path: Path, remote: str = "", lock_timeout_s: float = 60.0,
                 push_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.remote = remote
        self.lock_timeout_s = lock_timeout_s
        self.push_timeout_s = push_timeout_s  # a remote that stops answering mid-push

    @contextmanager
    def _repo(self) -> Iterator[git.Repo]:
        repo = git.Repo(self.path)
        try:
            yield repo
        finally:
            repo.close()

    def ensure(self) -> None:
        """Create the repository if it does not exist; give it a committer identity."""
        if not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            git.Repo.init(self.path, initial_branch="main").close()
        with self._repo() as repo, repo.config_writer() as cw:
            if not cw.has_option("user", "email"):
                cw.set_value("user", "name", "epochwatch")
                cw.set_value("user", "email", "epochwatch@localhost")

    def find_commit(self, checkpoint_sha256: str) -> str | None:
        """The commit that already published this checkpoint, if any."""
        with self._repo() as repo:
            if not repo.head.is_valid():
                return None
            out = repo.git.log(
                "--format=%H", "-F", f"--grep={TRAILER}: {checkpoint_sha256}", "-n", "1"
            )
            return out.strip() or None

    def commit_paths(self, paths: Sequence[Path], subject: str, body: str, checkpoint_sha256: str) -> str:
        """Commit exactly `paths` (others' staged changes stay untouched); returns the sha."""
        rel = [str(Path(p).resolve().relative_to(self.path.resolve())) for p in paths]
        message = f"{subject}\n\n{body.strip()}\n\n{TRAILER}: {checkpoint_sha256}\n"

        @retry(
            retry=retry_if_exception(_lock_held),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(self.lock_timeout_s),
            reraise=True,
        )
        def _commit() -> str:
            with self._repo() as repo:
                repo.git.add("--all", "--", *rel)
                # --only: commit just these paths even if something else is staged.
                # --no-gpg-sign / --no-verify: a user's global signing or hook settings must not
                # change (or block, on a headless GPU host) what the daemon commits.
                repo.git.commit("-m", message, "--only", "--allow-empty", "--no-gpg-sign",
                                "--no-verify", "--", *rel)
                return repo.head.commit.hexsha

        try:
            return _commit()
        except git.GitCommandError as exc:
            raise GitPublishError(f"git commit failed: {exc.stderr.strip() or exc}") from exc

    def push(self) -> PushResult:
        """Push the current branch to the configured remote and check each ref's result."""
        if not self.remote:
            return PushResult(True, "no remote configured")
        with self._repo() as repo:
            try:
                infos = repo.remote(self.remote).push(repo.active_branch.name,
                                                      kill_after_timeout=self.push_timeout_s)
            except (ValueError, git.GitCommandError) as exc:
                return PushResult(False, f"push to {self.remote} failed: {exc}")
            bad = [i for i in infos if i.flags & (i.ERROR | i.REJECTED | i.REMOTE_REJECTED | i.REMOTE_FAILURE)]
            if bad or not infos:
                summary = "; ".join(i.summary.strip() for i in bad) or "no ref pushed"
                return PushResult(False, f"push to {self.remote} failed: {summary}")
            return PushResult(True, infos[0].summary.strip())

    def commits_touching(self, rel_path: str) -> list[str]:
        with self._repo() as repo:
            if not repo.head.is_valid():
                return []
            return str(repo.git.log("--format=%H", "--", rel_path)).split()
