"""report.md, grid.png, curves.png and contact sheets from real stores with known histories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report_support import (
    GREEN,
    KEEP_TOKENS_3_PARAMS,
    NEVER_GREEN,
    ON_TIME,
    OSCILLATING,
    PROMPTS,
    PURPLE,
    add_run,
    portrait,
    write_config,
)

from tests.e2e import drain_pty
from watcher.cli import main
from watcher.config import load_config
from watcher.prompts import review_prompts
from watcher.report import contact_sheet, progress, write_report, write_run_pictures
from watcher.report.pictures import BORDER, GRID_SCALE, RIGHT, WRONG
from watcher.store import Store

REPO = Path(__file__).resolve().parent.parent

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"


def _setup(tmp_path: Path, epochs: list[dict]) -> tuple[object, Store]:
    cfg = load_config(write_config(tmp_path))
    store = Store(cfg.state_db)
    add_run(store, cfg.run_results_dir.parent, RUN, epochs, KEEP_TOKENS_3_PARAMS)
    return cfg, store


def _row(report: str, name: str) -> str:
    return next(line for line in report.splitlines() if f"| {name} |" in line)


def test_report_of_a_successful_run(tmp_path: Path) -> None:
    cfg, store = _setup(tmp_path, ON_TIME)
    path = write_report(cfg, store)
    text = path.read_text()
    assert path == cfg.run_results_dir / "report.md"
    assert "**Verdict: SUCCESS**" in text
    assert "met | first reached at epoch 3" in _row(text, "Early background convergence")
    assert "✅ met | 8.1/10 at epoch 7" in _row(text, "Quality target")
    assert "✅ met | 8.6/10 at epoch 9" in _row(text, "Production ready")
    assert "✅ met | 82.0% at epoch 5" in _row(text, "Colour accuracy")
    assert "Production candidate: epoch 9 (8.6/10)" in text
    # the baselines are compared: 3 vs 7 for the first right background
    assert "background right 4 epoch(s) earlier" in text
    assert "| SD15_PERFECT | unknown | 7 | 9.0 | 9.0 | success |" in text
    # the verdict is recorded for the cross-run analysis
    row = store.run_row(RUN)
    assert row is not None and (row.verdict, row.best_epoch) == ("success", 9)
    # the same store gives the same file (no clock in it)
    assert write_report(cfg, store).read_text() == text
    store.close()


def test_report_of_an_oscillating_run(tmp_path: Path) -> None:
    cfg, store = _setup(tmp_path, OSCILLATING)
    text = write_report(cfg, store).read_text()
    assert "**Verdict: PARTIAL**" in text
    assert "❌ not met | held at 4, lost at 5; held at 7, lost at 8" in _row(text, "Background stays right")
    assert "❌ not met" in _row(text, "Training stability")
    assert "score 7.3->7.1" in _row(text, "No quality loss while learning the background")
    assert "**warning**: oscillation: background right at epoch 7" in text
    store.close()


def test_report_of_a_run_stopped_at_epoch_4(tmp_path: Path) -> None:
    cfg, store = _setup(tmp_path, NEVER_GREEN)
    text = write_report(cfg, store).read_text()
    assert "**Verdict: FAILURE**" in text
    assert "❌ not met | background_match_rate 0.00 at epoch 4; never reached up to epoch 4" in _row(
        text, "Early background convergence")
    assert "⏳ pending" in _row(text, "Quality target")
    assert "**critical**: background never right in 4 evaluated epochs" in text
    assert "| stop |" in text  # the epoch 4 decision in the epoch table
    assert "keep_tokens = 5" in text
    store.close()


def _cell_origin(epoch_index: int, prompt_index: int) -> tuple[int, int]:
    cell = 24 * GRID_SCALE + 2 * BORDER
    return 190 + prompt_index * (cell + 8), 84 + epoch_index * (cell + 8)


def test_grid_shows_when_the_background_turned_green(tmp_path: Path) -> None:
    cfg, store = _setup(tmp_path, OSCILLATING)
    grid, curves = write_run_pictures(cfg, store)
    assert (grid.name, curves.name) == ("grid.png", "curves.png")
    img = np.asarray(Image.open(grid).convert("RGB"))
    # epochs down (10 rows), prompts across (4 columns); frame colour = background verdict
    for epoch_index, prompt_index, frame, inside in [(0, 0, WRONG, PURPLE), (2, 0, RIGHT, GREEN),
                                                     (7, 2, WRONG, PURPLE), (6, 3, RIGHT, GREEN)]:
        x, y = _cell_origin(epoch_index, prompt_index)
        assert tuple(img[y + 1, x + 1]) == frame
        assert tuple(img[y + BORDER + 2, x + BORDER + 2]) == inside
    # the 24 px recovery is enlarged with nearest-neighbour: each logical pixel a flat block
    x, y = _cell_origin(0, 0)
    block = img[y + BORDER: y + BORDER + GRID_SCALE, x + BORDER: x + BORDER + GRID_SCALE]
    assert (block == block[0, 0]).all()
    with Image.open(curves) as c:
        assert c.format == "PNG" and c.size == (1200, 850)
    store.close()


def test_pictures_of_a_run_with_nothing_evaluated(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    with Store(cfg.state_db) as store:
        store.ensure_run(RUN, params=KEEP_TOKENS_3_PARAMS)
        paths = write_run_pictures(cfg, store)
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
        text = write_report(cfg, store).read_text()
    assert "**Verdict: PENDING**" in text and "No epoch evaluated yet." in text


def test_contact_sheet_prompts_by_seeds() -> None:
    rows = []
    for i, background in enumerate((GREEN, PURPLE, GREEN, PURPLE, GREEN, PURPLE)):
        cells = portrait(background, (255, 102, 204))
        sample = Image.fromarray(cells).resize((512, 512), Image.NEAREST)
        rows.append((sample, cells, f"{i:02d} seed {1234 + i % 2}: caption {PROMPTS[i % 4]}"))
    sheet = np.asarray(contact_sheet(rows, columns=2, title="epoch 3"))
    narrow = np.asarray(contact_sheet(rows, columns=1))
    assert sheet.shape[1] > narrow.shape[1] and sheet.shape[0] < narrow.shape[0]
    # the recovery beside the first sample: 24 x 10 px, each logical pixel a 10 x 10 block
    top = 52
    x0 = 16 + 256 + 8
    y0 = top + (256 - 240) // 2
    recovery = sheet[y0: y0 + 240, x0: x0 + 240]
    blocks = recovery.reshape(24, 10, 24, 10, 3)
    assert (blocks == blocks[:, :1, :, :1, :]).all()
    assert np.array_equal(blocks[:, 0, :, 0, :], portrait(GREEN, (255, 102, 204)))


def test_report_command_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["report", "--config", str(config)]) == 2
    assert "no state database" in capsys.readouterr().err
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, ON_TIME[:5], KEEP_TOKENS_3_PARAMS)
    assert main(["report", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "verdict: partial so far (5 of 10 epochs); best epoch: 5"
    with Store(cfg.state_db) as store:
        row = store.run_row(RUN)
        assert row is not None and row.verdict is None  # recorded once the run is over
    assert [Path(p).name for p in out[1:4]] == ["grid.png", "curves.png", "report.md"]
    assert all(Path(p).is_file() for p in out[1:4])
    assert out[4] == f"not committed: {cfg.results_repo} is not a git repository"


def test_review_prompts_are_diverse() -> None:
    prompts = review_prompts(PROMPTS[:2], 12)
    assert len(prompts) == 12 == len({p.lower() for p in prompts})
    assert prompts[:2] == PROMPTS[:2]
    subjects = {p.split(",")[0] for p in prompts}
    assert len(subjects) >= 6
    assert sum("green background (#00ff00)" in p for p in prompts) >= 8
    assert any("blue background (#0000ff)" in p for p in prompts)
    assert all(p.count("(#") >= 3 for p in prompts)
    tail = " --n blurry --w 512 --h 512"
    with_options = review_prompts([PROMPTS[0] + tail], 5)
    assert all(p.endswith(tail) for p in with_options)


def test_progress_is_a_passthrough_off_a_terminal() -> None:
    items = list(range(7))
    assert list(progress(iter(items), 7, "scoring")) == items


def test_progress_stays_a_function_after_its_module_is_imported() -> None:
    """Importing a submodule binds its name on the package: a module named like one of the
    package's lazy functions would replace the function, and code importing it afterwards
    (the daemon's evaluation, in CI's test order) got a module it could not call."""
    code = ("import inspect, watcher.report as r\n"
            "list(r.progress(range(2), 2, 'x'))  # runs the lazy import\n"
            "from watcher.report import progress\n"
            "assert inspect.isfunction(progress), progress\n"
            "print(list(progress(range(3), 3, 'y')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 1, 2]"


def test_no_package_function_shares_its_name_with_a_submodule() -> None:
    import ast

    clashes = []
    for package in ("watcher", "evaluators", "launcher"):
        for init in (REPO / package).rglob("__init__.py"):
            names = {node.name for node in ast.parse(init.read_text(encoding="utf-8")).body
                     if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            submodules = {p.stem for p in init.parent.glob("*.py")} | {
                p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()}
            clashes += [f"{init.parent.name}.{name}" for name in sorted(names & submodules)]
    assert clashes == []


def test_progress_draws_a_bar_on_a_terminal(tmp_path: Path) -> None:
    import pty

    code = ("import sys; from watcher.report import progress\n"
            "out = list(progress(range(3), 3, 'generating'))\n"
            "print('items', out, file=sys.stdout)\n")
    leader, follower = pty.openpty()
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=follower,
                          timeout=60, check=True)
    os.close(follower)
    drawn = drain_pty(leader)
    assert proc.stdout.decode().strip() == "items [0, 1, 2]"
    assert b"generating" in drawn


def test_importing_the_report_package_stays_light() -> None:
    code = ("import sys, watcher.report\n"
            "heavy = [m for m in ('numpy', 'matplotlib', 'PIL', 'torch') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stopped_run_misses_the_targets_it_never_reached(tmp_path: Path) -> None:
    cfg, store = _setup(tmp_path, NEVER_GREEN)
    store.update_run(RUN, status="stopped")
    text = write_report(cfg, store).read_text()
    assert "❌ not met | the run ended at epoch 4, before epoch 7" in _row(text, "Quality target")
    assert "➖ not measurable | background_match_rate >= 0.5 never held" in _row(text, "Background stays right")
    assert "➖ not measurable | the run ended at epoch 4, before epoch 7" in _row(text, "Hair colours")
    assert "**Verdict: FAILURE**\n" in text  # no "so far": the run is over
    row = store.run_row(RUN)
    assert row is not None and row.verdict == "failure"
    store.close()
