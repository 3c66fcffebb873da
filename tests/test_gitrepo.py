"""The results repository: one commit per checkpoint, found again after a crash, index.lock
waited out, push results checked. Real git repositories in temp folders."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from watcher.publish.gitrepo import GitPublishError, ResultsRepo


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _epoch_folder(repo: Path, epoch: int, text: str) -> Path:
    folder = repo / "runs" / "R" / f"epoch-{epoch:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(text)
    return folder


def test_commit_only_its_own_paths_and_find_it_again(tmp_path: Path) -> None:
    repo = ResultsRepo(tmp_path / "results")
    repo.ensure()
    # Something unrelated is staged by a person: it must not end up in our commit.
    (repo.path / "notes.txt").write_text("mine")
    _git(repo.path, "add", "notes.txt")
    folder = _epoch_folder(repo.path, 1, "{}")
    sha = repo.commit_paths([folder], "R epoch 1: continue", "- rule: pass", "a" * 64)
    files = _git(repo.path, "show", "--name-only", "--format=", sha).split()
    assert files == ["runs/R/epoch-001/metrics.json"]
    assert "notes.txt" in _git(repo.path, "diff", "--cached", "--name-only")
    assert repo.find_commit("a" * 64) == sha
    assert repo.find_commit("b" * 64) is None
    subject = _git(repo.path, "log", "-1", "--format=%s")
    assert subject.strip() == "R epoch 1: continue"


def test_waits_for_a_held_index_lock(tmp_path: Path) -> None:
    repo = ResultsRepo(tmp_path / "results", lock_timeout_s=20)
    repo.ensure()
    lock = repo.path / ".git" / "index.lock"
    lock.write_text("")
    threading.Timer(1.0, lock.unlink).start()
    t0 = time.monotonic()
    sha = repo.commit_paths([_epoch_folder(repo.path, 2, "{}")], "R epoch 2: x", "", "c" * 64)
    assert time.monotonic() - t0 >= 0.9  # it really waited for the lock to go
    assert repo.find_commit("c" * 64) == sha


def test_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    repo = ResultsRepo(tmp_path / "results", lock_timeout_s=1)
    repo.ensure()
    (repo.path / ".git" / "index.lock").write_text("")
    with pytest.raises(GitPublishError, match="index.lock"):
        repo.commit_paths([_epoch_folder(repo.path, 3, "{}")], "R epoch 3: x", "", "d" * 64)


def test_push_result_is_checked(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    repo = ResultsRepo(tmp_path / "results", remote="origin")
    repo.ensure()
    _git(repo.path, "remote", "add", "origin", str(remote))
    repo.commit_paths([_epoch_folder(repo.path, 1, "{}")], "R epoch 1: x", "", "e" * 64)
    assert repo.push().ok
    assert _git(remote, "log", "--format=%s", "main").strip() == "R epoch 1: x"
    # The remote moves on without us: a non-fast-forward push must be reported, not ignored.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(remote), str(other)], check=True)
    (other / "x").write_text("x")
    _git(other, "add", "x")
    _git(other, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-qm", "other")
    _git(other, "push", "-q", "origin", "main")
    repo.commit_paths([_epoch_folder(repo.path, 2, "{}")], "R epoch 2: x", "", "f" * 64)
    result = repo.push()
    assert not result.ok and "failed" in result.detail
