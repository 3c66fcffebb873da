"""`make setup` with a scratch VENV and a stand-in Python (it records what pip would install):
a changed TORCH_SPEC reinstalls torch, an unchanged one does nothing, and the Debian packages
the tests need are installed by `make test`, never by `make setup`. Real make, real shell."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_PYTHON = """#!/bin/sh
# `python3 -m venv DIR`: a venv whose python records every call instead of running it
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\necho "$*" >> "%s/calls.log"\\n' "$3" > "$3/bin/python"
    chmod +x "$3/bin/python"
fi
"""


def make(venv: Path, fake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args, f"VENV={venv}", f"PY={fake}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_torch_spec_change_reinstalls_and_setup_installs_no_debian_packages(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    calls = venv / "calls.log"

    first = make(venv, fake, "setup", "TORCH_SPEC=torch==2.13.0")
    assert first.returncode == 0, first.stderr
    assert "-m pip install -q torch==2.13.0" in calls.read_text()
    assert "system-deps" not in first.stdout + first.stderr
    assert (venv / ".torch-spec").read_text().strip() == "torch==2.13.0"

    calls.unlink()
    again = make(venv, fake, "setup", "TORCH_SPEC=torch==2.13.0")
    assert again.returncode == 0 and not calls.exists(), again.stdout

    gpu = make(venv, fake, "setup", "TORCH_SPEC=torch==2.5.1")
    assert gpu.returncode == 0, gpu.stderr
    assert "-m pip install -q torch==2.5.1" in calls.read_text()
    assert (venv / ".torch-spec").read_text().strip() == "torch==2.5.1"


def test_make_test_installs_the_debian_packages_before_the_suite(tmp_path: Path) -> None:
    plan = subprocess.run(["make", "-n", "--no-print-directory", "test", f"VENV={tmp_path}/v"],
                          cwd=REPO, capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert "scripts/system-deps.sh" in plan
    assert plan.index("scripts/system-deps.sh") < next(
        i for i, line in enumerate(plan) if "-m pytest" in line)
    setup = subprocess.run(["make", "-n", "--no-print-directory", "setup", "demo", f"VENV={tmp_path}/v"],
                           cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert "system-deps" not in setup and "apt-get install -y" not in setup


def _slow_tests() -> list[str]:
    """`file::test` of every test function marked `@pytest.mark.slow`."""
    found = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef):
                if any(ast.unparse(d) == "pytest.mark.slow" for d in node.decorator_list):
                    found.append(f"tests/{path.name}::{node.name}")
    return found


def test_slow_tests_run_in_a_documented_target_and_not_in_make_test(tmp_path: Path) -> None:
    """make test leaves `slow` out and make slow runs them (make chaos too, those marked
    chaos); each is named in the test-targets table of docs/chaos.md with its twin."""
    def pytest_line(target: str) -> str:
        plan = subprocess.run(["make", "-n", "--no-print-directory", target, f"VENV={tmp_path}/v"],
                              cwd=REPO, capture_output=True, text=True, timeout=60).stdout
        return next(line for line in plan.splitlines() if "-m pytest" in line)

    assert "-m 'not slow'" in pytest_line("test")
    assert pytest_line("slow").endswith("-m slow")
    assert "-m chaos" in pytest_line("chaos")
    slow = _slow_tests()
    assert slow, "no slow test found: the search is broken"
    table = (REPO / "docs" / "chaos.md").read_text(encoding="utf-8")
    for name in slow:
        assert f"`{name}`" in table, f"{name} is marked slow but not listed in docs/chaos.md"
