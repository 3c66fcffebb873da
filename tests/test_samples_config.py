"""`[sampling] source`, and what the kohya import takes for it: sample_prompts, sample_sampler,
the every-epoch warning, and kohya's defaults for options its config leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import ConfigError, load_config

KOHYA = """
[model_arguments]
pretrained_model_name_or_path = "runwayml/stable-diffusion-v1-5"
[training_arguments]
output_dir = "out"
output_name = "px"
max_train_epochs = 4
{extra}
"""


def write(root: Path, kohya_extra: str, watcher_extra: str = "", source: str = "trainer") -> Path:
    (root / "trainer").mkdir(exist_ok=True)
    (root / "trainer" / "prompts.txt").write_text(
        "a, solid green background (#00ff00) --d 1\nb, red shirt (#ff0000), green background (#00ff00) --d 2\n")
    (root / "k.toml").write_text(KOHYA.format(extra=kohya_extra))
    cfg = root / "w.toml"
    cfg.write_text(f'[run]\nname = "r"\nkohya_config = "k.toml"\n[trainer]\ncwd = "trainer"\n'
                   f'[sampling]\nsource = "{source}"\n{watcher_extra}')
    return cfg


def test_trainer_source_takes_prompts_and_sampler_from_kohya(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n'
                                      'sample_sampler = "k_euler_a"\n'))
    assert cfg.sampling.source == "trainer" and cfg.warnings == []
    assert cfg.sampling.prompts_file == (tmp_path / "trainer" / "prompts.txt").resolve()  # trainer cwd
    assert [(p.text, p.seed) for p in cfg.prompts()] == [
        ("a, solid green background (#00ff00)", 1), ("b, red shirt (#ff0000), green background (#00ff00)", 2)]
    assert cfg.model.scheduler == "euler_a"


def test_ours_win_over_kohya(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("mine, blue background (#0000ff)\n")
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n'
                                      'sample_sampler = "ddim"\n',
                            'prompts_file = "mine.txt"\n[model]\nscheduler = "pndm"\n'))
    assert [p.text for p in cfg.prompts()] == ["mine, blue background (#0000ff)"]
    assert cfg.model.scheduler == "pndm"


@pytest.mark.parametrize(("extra", "warning"), [
    ('sample_prompts = "prompts.txt"\n',
     "no sample_every_n_epochs: the trainer renders no samples per epoch, so no epoch can be "
     "judged (set it to 1)"),
    ('sample_prompts = "prompts.txt"\nsample_every_n_epochs = 2\n',
     "sample_every_n_epochs = 2: the trainer samples every 2 epochs, so only those epochs are "
     "judged (set it to 1)"),
    ('sample_prompts = "prompts.txt"\nsample_every_n_steps = 100\nsample_every_n_epochs = 1\n',
     "sample_every_n_steps = 100: samples named by step are refused; set sample_every_n_epochs "
     "= 1 instead"),
])
def test_warns_when_the_trainer_does_not_sample_every_epoch(tmp_path: Path, extra: str, warning: str) -> None:
    cfg = load_config(write(tmp_path, extra))
    assert cfg.warnings == [f"{(tmp_path / 'k.toml').resolve()}: {warning}"]


def test_render_source_needs_no_sampling_schedule(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_sampler = "heun"\n',
                            source="render"))
    assert cfg.sampling.source == "render"
    assert cfg.warnings == [f"{(tmp_path / 'k.toml').resolve()}: sample_sampler 'heun' has no "
                            "equivalent here; the daemon renders with dpmsolver++"]


def test_trainer_source_without_prompts_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "sample_every_n_epochs = 1\n"))
    assert str(info.value) == (f"{(tmp_path / 'w.toml')}:7: sampling.source: source = \"trainer\" "
                               "needs the prompts kohya samples with (sampling.prompts_file, or "
                               "sample_prompts in the kohya config)")


def test_trainer_source_needs_no_model(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a, solid green background (#00ff00)\n")
    (tmp_path / "w.toml").write_text('[run]\nname = "r"\noutput_dir = "o"\noutput_name = "px"\n'
                                     'max_train_epochs = 3\n[sampling]\nsource = "trainer"\n'
                                     'prompts_file = "p.txt"\n')
    cfg = load_config(tmp_path / "w.toml")
    assert cfg.model.base is None and cfg.sampling.set_timeout_s == 600.0
    (tmp_path / "w.toml").write_text(cfg.path.read_text().replace("trainer", "render"))
    with pytest.raises(ConfigError, match="model: base is required"):
        load_config(tmp_path / "w.toml")


def test_kohya_defaults_for_options_left_out(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n'))
    hyper = cfg.params()["hyperparameters"]
    assert (hyper["lr_scheduler"], hyper["optimizer_type"]) == ("constant", "AdamW")
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n'
                                      "use_8bit_adam = true\n"))
    assert cfg.params()["hyperparameters"]["optimizer_type"] == "AdamW8bit"
    cfg = load_config(write(tmp_path, 'sample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n'
                                      'optimizer_type = "Prodigy"\nlr_scheduler = "cosine"\n'))
    hyper = cfg.params()["hyperparameters"]
    assert (hyper["lr_scheduler"], hyper["optimizer_type"]) == ("cosine", "Prodigy")


def test_commands_say_the_warning(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = write(tmp_path, 'sample_prompts = "prompts.txt"\n')  # no sample_every_n_epochs
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "watcher", "replay", "--config", str(cfg),
                           "--images", str(tmp_path / "empty")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("epochwatch replay: warning: ") and "no sample_every_n_epochs" in lines[0]
    assert lines[-1].startswith(f"epochwatch replay: {tmp_path / 'empty'}: no epoch folders")
