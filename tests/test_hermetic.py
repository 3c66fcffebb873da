"""`make test` owes nothing to the machine's user settings (scripts/hermetic.sh): git's global
and system configs are empty files, HOME is a throwaway folder, the locale is explicit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
under_make_test = pytest.mark.skipif(
    os.environ.get("EPOCHWATCH_HERMETIC") != "1",
    reason="checks the environment scripts/hermetic.sh makes; run through `make test`",
)


def test_git_test_passes_whatever_the_default_branch(tmp_path: Path) -> None:
    """A user whose git names new branches `trunk`: the results repository code and the
    git-touching tests still work on `main`."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = trunk\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(gitconfig), "HOME": str(tmp_path)}
    probe = subprocess.run(["git", "config", "--global", "init.defaultBranch"], env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "trunk"  # the setting really is in force for the child
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_gitrepo.py::test_push_result_is_checked",
         "tests/test_gitrepo.py::test_commit_only_its_own_paths_and_find_it_again"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout


def test_results_repo_is_on_main_under_trunk_default(tmp_path: Path) -> None:
    from watcher.publish.gitrepo import ResultsRepo

    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = trunk\n[commit]\n\tgpgsign = true\n")
    os.environ["GIT_CONFIG_GLOBAL"], saved = str(gitconfig), os.environ.get("GIT_CONFIG_GLOBAL")
    try:
        repo = ResultsRepo(tmp_path / "results")
        repo.ensure()
        folder = repo.path / "runs" / "R" / "epoch-001"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
        repo.commit_paths([folder], "R epoch 1: continue", "", "a" * 64)
        branch = subprocess.run(["git", "-C", str(repo.path), "branch", "--show-current"],
                                capture_output=True, text=True, check=True).stdout.strip()
    finally:
        if saved is None:
            del os.environ["GIT_CONFIG_GLOBAL"]
        else:
            os.environ["GIT_CONFIG_GLOBAL"] = saved
    assert branch == "main"


@under_make_test
def test_make_test_environment_is_hermetic() -> None:
    for name in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"):
        assert Path(os.environ[name]).read_text() == ""
    home = Path(os.environ["HOME"])
    assert home.is_dir() and "epochwatch-hermetic" in str(home)
    assert not any(k.startswith("HF_") and k not in {"HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"}
                   for k in os.environ)
    assert os.environ["LC_ALL"] == "C.UTF-8"
    assert os.environ["PYTHONPATH"] == str(REPO)
    out = subprocess.run(["git", "config", "--list", "--show-origin"], capture_output=True,
                         text=True, cwd="/").stdout
    assert out.strip() == ""  # no user or system git setting reaches the tests
