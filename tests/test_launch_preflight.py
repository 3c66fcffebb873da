"""Pre-flight (launcher/preflight.py): what `launch` needs is checked before anything starts,
each failure one line naming the file and key, exit 2; `watch --once` checks the same. A
trainer that still cannot start: one line, exit 2, and the daemon `launch` started is stopped.
Real processes: the CLI, the daemon it starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil

from watcher.samples import demo_set
from watcher.store import Store
from watcher.testing import write_trainer_source_config

REPO = Path(__file__).resolve().parents[1]
RUN = "PREFLIGHT"


def config(tmp_path: Path, trainer: str = "", results: str = "results") -> Path:
    path = write_trainer_source_config(tmp_path, demo_set.write_prompts(tmp_path / "prompts.txt"),
                                       name=RUN, tables=trainer)
    path.write_text(path.read_text().replace('repo = "results"', f'repo = "{results}"'))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip()


def test_trainer_folder_that_does_not_exist(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[trainer]\ncommand = ["python3", "train_network.py"]\ncwd = "/opt/sd-scripts-missing"\n')
    for args in (("launch",), ("watch", "--once")):
        line = refused(cli(*args, "--config", str(cfg)))
        assert line.endswith(f"{cfg}: trainer.cwd /opt/sd-scripts-missing: no such folder"), line
    assert not (tmp_path / "state" / "daemon.log").exists()  # nothing was started


def test_trainer_program_not_found(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[trainer]\ncommand = ["no-such-trainer-program", "--x"]\n')
    line = refused(cli("launch", "--config", str(cfg)))
    assert "trainer.command: 'no-such-trainer-program' is not an executable program" in line
    line = refused(cli("launch", "--config", str(config(tmp_path, ""))))
    assert "trainer.command is empty" in line


def test_results_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    cfg = config(tmp_path, results="a-file/results")
    with Store(tmp_path / "state" / "state.db") as store:  # a run `report` can find
        store.ensure_run(RUN, config_path=str(cfg), params={})
    for args in (("watch", "--once"), ("replay", "--images", str(tmp_path)), ("report",)):
        line = refused(cli(*args, "--config", str(cfg)))
        assert f"results.repo {tmp_path / 'a-file' / 'results'}: {tmp_path / 'a-file'} is not a folder" in line


def test_trainer_that_cannot_start_stops_the_daemon_launch_started(tmp_path: Path) -> None:
    trainer = tmp_path / "trainer.bin"  # executable, but no program the kernel can run
    trainer.write_bytes(b"\x00\x01 not an executable format")
    trainer.chmod(0o755)
    (tmp_path / "output" / "sample").mkdir(parents=True)
    cfg = config(tmp_path, f'[trainer]\ncommand = ["{trainer}"]\n')
    proc = cli("launch", "--config", str(cfg))
    line = refused(proc)
    assert f"{cfg}: trainer.command: cannot start trainer '{trainer}': Exec format error" in line
    started = re.search(r"daemon: pid (\d+)", proc.stdout)
    assert started is not None, proc.stdout
    pid = int(started.group(1))
    assert f"daemon: pid {pid} stopped" in proc.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with Store(tmp_path / "state" / "state.db") as store:
        assert store.daemon_state(RUN) == "stopped"


def test_a_rendering_daemon_without_prompts_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"  # loads (status and report need no prompt), but renders nothing
    cfg.write_text('[run]\nname = "NP"\noutput_dir = "o"\noutput_name = "a"\nmax_train_epochs = 3\n'
                   '[model]\nbase = "some/hub-model"\n')
    line = refused(cli("watch", "--once", "--config", str(cfg)))
    assert line.endswith("sampling.prompts: no prompts (set sampling.prompts or "
                         "sampling.prompts_file): the daemon would render nothing to judge")
