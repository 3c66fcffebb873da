"""Builders for the report and analysis tests: real state stores with realistic epoch
histories (real PNG samples, metrics.json-shaped evaluations, the criteria's decisions).
No tests here; the other test_report*/test_analysis*/test_review files import these."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from watcher.epoch.decide import PLAN_RULES, EpochRecord, decide
from watcher.store import Store
from watcher.testing import KEEP_TOKENS_3_DEMO_PARAMS as KEEP_TOKENS_3_PARAMS  # noqa: F401 - report tests

GREEN, PURPLE, PINK = (0, 255, 0), (128, 0, 128), (255, 102, 204)
PROMPTS = [
    "pixel art portrait of a woman, pink hair (#ff66cc), lips (#cc6666), gold crown (#ffd700), solid green background (#00ff00)",
    "pixel art portrait of a man, brown hair (#8b4513), blue shirt (#1e90ff), solid green background (#00ff00)",
    "pixel art portrait of a girl, purple hair (#9932cc), necklace (#c0c0c0), solid green background (#00ff00)",
    "pixel art portrait of a robot, grey metal (#808080), red eyes (#ff0000), solid green background (#00ff00)",
]


def portrait(background: tuple[int, int, int], hair: tuple[int, int, int], cells: int = 24) -> np.ndarray:
    """A 24 x 24 pixel-art face on a flat background."""
    img = np.zeros((cells, cells, 3), dtype=np.uint8)
    img[:] = background
    img[6:22, 7:17] = (241, 194, 125)          # face
    img[4:9, 6:18] = hair                       # hair
    img[12, 9] = img[12, 14] = (0, 0, 0)        # eyes
    img[17, 10:14] = (204, 102, 102)            # lips
    img[22:, 5:19] = (30, 144, 255)             # shirt
    return img


def epoch_metrics(epoch: int, rate: float | None, score: float | None, *,
                  color: float | None = None, style: float | None = None,
                  n: int = 4, unique_colors: int = 12, hair_delta_e: float = 5.0,
                  prompts: Sequence[str] = PROMPTS) -> dict[str, Any]:
    """An aggregate (and image entries) as evaluators.aggregate_epoch would give them."""
    right = 0 if rate is None else round(rate * n)
    images = []
    for i, prompt in enumerate(prompts[:n]):
        match = None if rate is None else i < right
        images.append({
            "prompt": prompt, "seed": 1234, "sample": f"samples/{i:02d}-s1234.png",
            "sample_24px": f"samples_24px/{i:02d}-s1234.png",
            "background_hex": "#00ff00" if match else "#800080", "background_match": match,
            "background_delta_e": 0.0 if match else 40.0,
            "per_color": [{"hex": "#ff66cc", "role": "hair", "phrase": "pink hair",
                           "matched_hex": "#ff66cc", "delta_e": hair_delta_e},
                          {"hex": "#ffd700", "role": "accessory", "phrase": "gold crown",
                           "matched_hex": "#ffd700", "delta_e": 3.0}],
        })
    aggregate = {
        "background_match_rate": rate, "color_accuracy": color, "style_quality": style,
        "visual_score": None if score is None else min(10.0, score + 0.3),
        "style_score": None if score is None else max(1.0, score - 0.2),
        "prompt_score": None if score is None else max(1.0, score - 0.1),
        "overall_score": score, "unique_colors": unique_colors,
        "background_hex": "#00ff00" if rate is not None and rate >= 0.5 else "#800080",
        "issues": [], "issue_counts": {}, "n_images": n,
    }
    return {"run": "", "epoch": epoch, "images": images, "aggregate": aggregate, "decisions": []}


def add_run(store: Store, results: Path, name: str, epochs: Sequence[dict[str, Any]],
            params: dict[str, Any] | None = None, *, pictures: bool = True) -> None:
    """Store a run: one checkpoint + evaluation + decisions per epoch, samples on disk.

    Each item of `epochs` holds `epoch`, `rate`, `score` and optional epoch_metrics keywords.
    """
    store.ensure_run(name, params={**(params or {}), "run_name": name})
    history: list[EpochRecord] = []
    for item in epochs:
        kw = dict(item)
        epoch = kw.pop("epoch")
        metrics = epoch_metrics(epoch, kw.pop("rate"), kw.pop("score"), **kw)
        metrics["run"] = name
        folder = results / name / f"epoch-{epoch:03d}"
        if pictures:
            (folder / "samples_24px").mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(metrics["images"]):
                bg = GREEN if img["background_match"] else PURPLE
                Image.fromarray(portrait(bg, PINK if i % 2 == 0 else (139, 69, 19))).save(
                    folder / img["sample_24px"])
        sha = hashlib.sha256(f"{name}:{epoch}".encode()).hexdigest()
        ck, _ = store.add_checkpoint(name, f"/out/{name}-{epoch:06d}.safetensors", epoch, sha,
                                     1000 + epoch, "session", {"ss_epoch": str(epoch)})
        history.append(EpochRecord(epoch, metrics["aggregate"]))
        decisions = decide(list(PLAN_RULES), history, epoch)
        metrics["decisions"] = [d.to_dict() for d in decisions]
        store.save_evaluation(ck, epoch, json.loads(json.dumps(metrics)), str(folder))
        for d in decisions:
            store.save_decision(name, epoch, ck.id, d)


# Known histories (overall score 1-10, background match rate 0-1).
ON_TIME = [  # green from epoch 3, stable, 8+ by 7, 8.6 at 9: a success
    {"epoch": e, "rate": r, "score": s, "color": c, "style": 80.0 + e}
    for e, r, s, c in [(1, 0.0, 6.0, 60.0), (2, 0.25, 6.6, 66.0), (3, 0.75, 7.1, 72.0),
                       (4, 1.0, 7.4, 78.0), (5, 1.0, 7.7, 82.0), (6, 1.0, 7.9, 84.0),
                       (7, 1.0, 8.1, 85.0), (8, 1.0, 8.3, 86.0), (9, 1.0, 8.6, 87.0),
                       (10, 1.0, 8.5, 87.0)]
]
OSCILLATING = [  # green at 3, wrong at 5, green at 6, wrong at 8: oscillation
    {"epoch": e, "rate": r, "score": s, "color": 70.0, "style": 75.0}
    for e, r, s in [(1, 0.0, 6.0), (2, 0.25, 6.5), (3, 0.75, 7.0), (4, 0.75, 7.2),
                    (5, 0.25, 7.3), (6, 0.75, 7.1), (7, 1.0, 7.4), (8, 0.0, 7.5),
                    (9, 0.75, 7.4), (10, 0.75, 7.5)]
]
NEVER_GREEN = [  # stopped by the epoch 4 rule
    {"epoch": e, "rate": 0.0, "score": s, "color": 40.0, "style": 60.0}
    for e, s in [(1, 4.0), (2, 4.5), (3, 4.8), (4, 5.0)]
]

REPO = Path(__file__).resolve().parent.parent
KOHYA = REPO / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "training_config_SD15_KEEP_TOKENS_3.toml"


PLAN = REPO / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "plan.toml"


def write_config(root: Path, name: str = "SD15_KEEP_TOKENS_3_EXPERIMENT", *, kohya: bool = True,
                 plan: Path | None = None, with_plan: bool = True) -> Path:
    """A watcher config for `name` in root (state in root/state, results in root/results),
    with a copy of the experiment's kohya config beside it, and `plan` as its plan (default:
    the experiment's own plan.toml for the experiment's run; with_plan=False: none)."""
    root.mkdir(parents=True, exist_ok=True)
    if plan is None and with_plan and name == "SD15_KEEP_TOKENS_3_EXPERIMENT":
        plan = PLAN
    kohya_line = f'plan = "{plan}"\n' if plan is not None else ""
    if kohya:
        (root / "kohya.toml").write_text(KOHYA.read_text())
        kohya_line += 'kohya_config = "kohya.toml"\noutput_dir = "output"\n'
    else:
        kohya_line += 'output_dir = "output"\noutput_name = "lora"\nmax_train_epochs = 10\n'
    config = root / "config.toml"
    prompts = ",\n".join(f'  {{ text = "{p}" }}' for p in PROMPTS)
    config.write_text(f"""
[run]
name = "{name}"
{kohya_line}state_dir = "state"

[run.dataset]
num_images = 203
caption_version = "final_corrected_lips_12hex_v1"

[model]
base = "models/tiny-sd"

[sampling]
seeds = [1234]
prompts = [
{prompts}
]

[results]
repo = "results"
dir = "runs"
""")
    return config


def seeded_config(root: Path, run: str = "SD15_KEEP_TOKENS_3_EXPERIMENT") -> Path:
    """The plan's config with an on-time run already in its state store (for review/status)."""
    from watcher.config import load_config

    path = write_config(root)
    cfg = load_config(path)
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, run, ON_TIME, KEEP_TOKENS_3_PARAMS)
    return path
