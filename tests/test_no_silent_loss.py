"""Nothing lost silently: review history, --write-config without --force, a deterministic and
committed report, downscale names and modes, status --json always JSON, permission errors
named, manifest paths taken from the manifest's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report_support import seeded_config, write_config

from watcher.cli import main
from watcher.config import load_config
from watcher.publish.gitrepo import ResultsRepo
from watcher.store import Store

REPO = Path(__file__).resolve().parent.parent
RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    return seeded_config(tmp_path, RUN)


def _review(config: Path, epoch: int, v: float, notes: str) -> int:
    return main(["review", "-c", str(config), "--epoch", str(epoch), "--visual", str(v),
                 "--style", "5", "--prompt-score", "6", "--notes", notes])


def test_reviews_keep_their_history(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _review(config, 3, 7, "first look") == 0
    assert _review(config, 3, 4, "on a second look, muddy") == 0
    out = capsys.readouterr().out
    assert "1 earlier review(s) of epoch 3 kept (this one counts): 7/5/6" in out
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        assert [r.visual for r in store.reviews(RUN)] == [4.0]           # the latest counts
        history = store.review_history(RUN, 3)
        assert [(r.visual, r.notes) for r in history] == [(7.0, "first look"), (4.0, "on a second look, muddy")]
    assert main(["status", "-c", str(config), "--json"]) == 0
    [review] = json.loads(capsys.readouterr().out)["reviews"]
    assert (review["epoch"], review["visual"], review["notes"]) == (3, 4.0, "on a second look, muddy")
    assert [(r["visual"], r["notes"]) for r in review["earlier"]] == [(7.0, "first look")]
    assert main(["status", "-c", str(config)]) == 0
    assert "review    epoch 3: visual 4, style 5, prompt 6 (1 earlier): on a second look, muddy" in capsys.readouterr().out


def test_a_store_from_before_the_history_keeps_its_reviews(config: Path) -> None:
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        store.conn.execute("DROP TABLE review_history")
        store.conn.execute("INSERT INTO reviews VALUES (?, 2, 8, 7, 6, 'old', 1.0)", (RUN,))
    with Store(cfg.state_db) as store:
        assert [(r.epoch, r.notes) for r in store.review_history(RUN)] == [(2, "old")]
        store.save_review(RUN, 2, 3, 3, 3, "new")
        assert [r.notes for r in store.review_history(RUN, 2)] == ["old", "new"]


def test_serve_shows_earlier_reviews(config: Path) -> None:
    from watcher.serve import data, pages

    assert _review(config, 5, 8, "crisp") == 0 and _review(config, 5, 6, "less so") == 0
    [src] = data.load_sources([str(config)])
    page = pages.epoch_page(src, 5)
    assert page is not None and page["review"]["notes"] == "less so"
    assert [r["notes"] for r in page["earlier_reviews"]] == ["crisp"]


def test_status_json_is_json_without_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["status", "-c", str(config), "--json"]) == 2
    captured = capsys.readouterr()
    assert "no state database" in json.loads(captured.out)["error"]
    assert captured.err.startswith("epochwatch status: no state database")  # the contract's one line
    assert main(["status", "-c", str(tmp_path / "missing.toml"), "--json"]) == 2
    assert "config file not found" in json.loads(capsys.readouterr().out)["error"]


def test_report_is_deterministic_and_committed(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(config)
    ResultsRepo(cfg.results_repo).ensure()
    texts, lines = [], []
    for _ in range(3):
        assert main(["report", "-c", str(config)]) == 0
        lines.append(capsys.readouterr().out.splitlines()[-1])
        texts.append((cfg.run_results_dir / "report.md").read_bytes())
    assert texts[0] == texts[1] == texts[2]
    assert lines[0].startswith("committed ") and lines[1].startswith("unchanged since commit ")
    assert lines[1] == lines[2]
    mine = [str(cfg.run_results_dir / n) for n in ("report.md", "grid.png", "curves.png")]
    status = subprocess.run(["git", "-C", str(cfg.results_repo), "status", "--porcelain", "--", *mine],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


def test_report_colour_tie_is_stable_across_hash_seeds(tmp_path: Path) -> None:
    code = ("from watcher.report.history import RunHistory\n"
            "from watcher.report.rootcause import root_cause\n"
            "r = RunHistory(name='x')\n"
            "for e, h in enumerate(['#aa0000', '#00aa00', '#0000aa', '#aa0000', '#00aa00', '#0000aa'], 1):\n"
            "    r.epochs[e] = {'background_match_rate': 0.0, 'background_hex': h}\n"
            "print([f.message for f in root_cause(r, 4) if f.kind == 'background_never'][0])\n")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outs) == 1 and "mostly #0000aa" in outs.pop()


def test_write_config_refuses_to_overwrite_without_force(config: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "next.toml"
    out.write_text("# mine\n")
    argv = ["analyze", "hypotheses", "-c", str(config), "--source", "local", "--write-config", str(out)]
    assert main(argv) == 2
    assert f"{out} exists; add --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == "# mine\n"
    assert main([*argv, "--force"]) == 0
    assert out.read_text() != "# mine\n"


def _picture(path: Path, fmt: str) -> None:
    rgb = np.kron(np.random.default_rng(1).integers(0, 255, (24, 24, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    Image.fromarray(rgb).save(path, format=fmt)


def test_downscale_png_names_and_umask(tmp_path: Path) -> None:
    _picture(tmp_path / "photo.jpg", "PNG")
    old = os.umask(0o022)
    try:
        assert main(["downscale", str(tmp_path / "photo.jpg"), "--out-dir", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    [written] = (tmp_path / "out").iterdir()
    assert written.name == "photo.png" and written.stat().st_mode & 0o777 == 0o644


def test_permission_errors_are_named(tmp_path: Path) -> None:
    image = tmp_path / "locked.png"
    _picture(image, "PNG")
    image.chmod(0)
    proc = subprocess.run([*NO_DAC, sys.executable, "-m", "watcher", "score", str(image)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert f"epochwatch score: {image}: permission denied" in proc.stderr and "corrupt" not in proc.stderr


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    _picture(folder / "a.png", "PNG")
    (folder / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "red hair"}) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _picture(elsewhere / "a.png", "PNG")  # a same-named file in the working folder is not used
    (folder / "a.png").chmod(0o644)
    proc = subprocess.run([sys.executable, "-m", "watcher", "score", "--manifest", str(folder / "m.jsonl"), "--json"],
                          capture_output=True, text=True, timeout=60, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"] == "a.png"
    (folder / "a.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "watcher", "score", "--manifest", str(folder / "m.jsonl"), "--json"],
                          capture_output=True, text=True, timeout=60, cwd=elsewhere)
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"] == "no such file"
