"""scripts/e2e_kohya/prepare.py: the files `make e2e-kohya` hands to kohya and to epochwatch.

The e2e run itself needs sd-scripts and ~10 CPU minutes, so it is not part of make test; this
keeps its inputs loadable by the project's config code as that code changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from watcher.config import load_config, load_kohya_config
from watcher.training.tensorboard import logging_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "e2e_kohya"))
from prepare import OUTPUT_NAME, PROMPTS, RunSpec, prepare  # noqa: E402


def spec(tmp_path: Path, **kw: object) -> RunSpec:
    return RunSpec(work=tmp_path / "run", sd_scripts=tmp_path / "sd-scripts",
                   kohya_venv=tmp_path / "venv", model=tmp_path / "model",
                   tokenizer_cache=tmp_path / "tokenizers", **kw)  # type: ignore[arg-type]


def test_render_run_files_load_and_agree(tmp_path: Path) -> None:
    s = spec(tmp_path, images=3, repeats=5, epochs=5, stop_epoch=3)
    cfg = load_config(prepare(s))
    train = load_kohya_config(s.work / "training.toml")  # flattened, as sd-scripts reads it
    # the watcher's identity of the run comes from the kohya config it hands to the trainer
    assert cfg.output_dir == s.work / "output" == Path(train["output_dir"])
    assert (cfg.run.output_name, cfg.run.max_train_epochs) == (OUTPUT_NAME, 5)
    assert Path(cfg.model.base) == s.model
    assert train["tokenizer_cache_dir"] == str(s.tokenizer_cache)
    assert train["sample_every_n_epochs"] == 1
    # kohya logs to TensorBoard there, and the daemon reads it from the same kohya config
    assert logging_dir(cfg) == (s.work / "tensorboard", f"{OUTPUT_NAME}_")
    # the trainer command: kohya's own accelerate, in sd-scripts, reading this kohya config
    cmd = list(cfg.trainer.command)
    assert cmd[:6] == ["env", "-u", "PYTHONPATH", "nice", "-n", "19"]
    assert cmd[6] == str(s.kohya_venv / "bin" / "accelerate")
    assert cmd[-2:] == ["--config_file", str(s.work / "training.toml")]
    assert Path(cfg.trainer.cwd) == s.sd_scripts
    [rule] = cfg.criteria
    assert (rule.metric, rule.epoch, rule.mode, rule.action) == ("background_match_rate", 3, "by", "stop")
    prompts = cfg.prompts()
    assert [p.text for p in prompts] == list(PROMPTS)
    assert {(p.width, p.height, p.steps) for p in prompts} == {(64, 64, s.sample_steps)}
    assert len({p.seed for p in prompts}) == len(PROMPTS)


def test_dataset_is_dreambooth_layout_with_captions(tmp_path: Path) -> None:
    s = spec(tmp_path, images=5, repeats=7, resolution=96)
    prepare(s)
    folder = s.work / "data" / "7_px"
    images = sorted(folder.glob("*.png"))
    assert len(images) == 5
    for img in images:
        with Image.open(img) as im:
            assert im.size == (96, 96)
            assert im.getpixel((0, 0)) == (0, 255, 0)  # the avatars' #00ff00 background
        caption = img.with_suffix(".txt").read_text()
        assert "solid green background (#00ff00)" in caption
