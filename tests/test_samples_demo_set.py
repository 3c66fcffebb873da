"""The demo's stand-in replay folder tells its story to the real scorer: `epochwatch score`
in a subprocess, the plan's rules on the per-epoch aggregates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evaluators import aggregate_epoch
from watcher.epoch.decide import PLAN_RULES, EpochRecord, decide, verdict
from watcher.prompts import PromptDefaults, parse_prompt_file
from watcher.samples import demo_set
from watcher.samples.layout import scan


def test_demo_set_story_seen_by_epochwatch_score(tmp_path: Path) -> None:
    out = demo_set.build(tmp_path / "replay")
    assert "STAND-IN IMAGES, NOT MODEL OUTPUT" in (out / "README.txt").read_text()
    prompts = demo_set.prompts_file(out).read_text().splitlines()
    assert len(prompts) == len(demo_set.DEMO_SUBJECTS) and all("(#00ff00) --d 1" in p for p in prompts)
    pairs = parse_prompt_file(demo_set.prompts_file(out), PromptDefaults())
    layout = scan(out, pairs, [], "demo_lora")
    assert layout.kind == "folders" and layout.problems == []  # README.txt passed over
    assert [(e.epoch, e.judged, len(e.samples)) for e in layout.epochs] == [(e, True, 4) for e in range(1, 11)]
    manifest = tmp_path / "m.jsonl"
    with manifest.open("w") as fh:
        for epoch in range(1, 11):
            for idx, (_, prompt) in enumerate(demo_set.DEMO_SUBJECTS):
                image = out / f"epoch_{epoch:02d}" / f"{idx:02d}.png"
                fh.write(json.dumps({"image": str(image), "prompt": prompt}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "watcher", "score", "--manifest", str(manifest), "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    n = len(demo_set.DEMO_SUBJECTS)
    history = [EpochRecord(e + 1, aggregate_epoch(rows[e * n: (e + 1) * n])) for e in range(10)]
    bg = [r.metrics["background_match_rate"] for r in history]
    assert bg[:2] == [0.0, 0.0] and bg[2:5] == [1.0, 1.0, 1.0]  # green from epoch 3
    assert bg[5] < 0.5 and bg[6:] == [1.0] * 4  # the regression at epoch 6
    scores = [r.metrics["overall_score"] for r in history]
    assert scores[0] < scores[2] < scores[4] < scores[6] <= scores[9]  # quality rises
    outcomes = {e: {d.criterion: d.outcome for d in decide(PLAN_RULES, history, e)} for e in range(1, 11)}
    assert outcomes[4]["green_background_by_epoch_4"] == "pass"  # the continue path
    assert outcomes[6]["background_oscillation"] == "fail"
    assert outcomes[7]["quality_8_by_epoch_7"] == "pass"
    assert outcomes[5]["color_accuracy_80_by_epoch_5"] == "pass"
    marked = [e for e in range(1, 11) if outcomes[e]["production_candidate"] == "marked"]
    assert marked and marked[0] >= 7 and 10 in marked
    result = verdict(PLAN_RULES, history)
    assert result.oscillations and result.candidates and not result.stop_failures


def test_demo_replay_shows_the_continue_path(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "watcher", "demo", "--replay", "--workdir",
                           str(tmp_path / "d")], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "stand-in images" in out and "not model output" in out
    rows = {int(line.split()[0]): line for line in out.splitlines()
            if line[:5].strip().isdigit() and len(line.split()) > 5}
    assert sorted(rows) == list(range(1, 11))
    assert "green_background_by_epoch_4: background_match_rate 1 >= 0.5 at epoch 4" in out
    assert rows[6].split()[5] == "alert" and "background_oscillation: oscillation" in out
    assert all("candidate" in rows[e] for e in (7, 8, 9, 10))
    assert "run: finished; verdict partial, best epoch 10" in out
    report = tmp_path / "d" / "results" / "runs" / "DEMO_REPLAY_CONTINUE"
    assert all((report / name).exists() for name in ("report.md", "grid.png", "curves.png"))
    assert "STAND-IN IMAGES" in (tmp_path / "d" / "replay" / "README.txt").read_text()
