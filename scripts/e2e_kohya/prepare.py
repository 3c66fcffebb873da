"""Writes one e2e run's folder: a tiny captioned dataset, kohya's prompt file and config, and
the watcher config. Used by run.py (project venv); imports nothing from kohya.

Layout of WORK (wiped first by run.py):
    data/<repeats>_px/avatar_NNN.png + .txt   DreamBooth layout kohya expects
    prompts.txt                               kohya prompt file: kohya samples it every epoch,
                                              the daemon renders it in render mode
    training.toml                             train_network.py --config_file
    watcher.toml                              epochwatch launch --config
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
# The project's own copies of the shared pixel art, licences beside them (LICENSE.md).
AVATARS = REPO / "tests" / "fixtures" / "pixelart" / "avatars"
CAPTION = "pixel art portrait, solid green background (#00ff00), {hair} hair"
HAIRS = ("black", "brown", "red", "blonde", "white", "blue")
PROMPTS = (
    "pixel art portrait of a woman, solid green background (#00ff00)",
    "pixel art portrait of a man, solid green background (#00ff00)",
)
RUN_NAME = "e2e-kohya"
OUTPUT_NAME = "e2e"


@dataclass(frozen=True)
class RunSpec:
    work: Path
    sd_scripts: Path
    kohya_venv: Path
    model: Path
    tokenizer_cache: Path
    source: str = "render"  # render | trainer
    images: int = 4
    repeats: int = 8
    batch: int = 2
    epochs: int = 4
    stop_epoch: int = 2
    resolution: int = 64
    sample_steps: int = 4
    threads: int = 2


def write_dataset(spec: RunSpec) -> Path:
    """First N green-background avatars, nearest-upscaled from 16 px to the training size."""
    folder = spec.work / "data" / f"{spec.repeats}_px"
    folder.mkdir(parents=True)
    listing = json.loads((AVATARS / "avatars.json").read_text())
    green = [a["image"] for a in listing if a["background"] == "#00ff00"][: spec.images]
    for i, name in enumerate(green):
        img = Image.open(AVATARS / name).convert("RGB")
        img.resize((spec.resolution, spec.resolution), Image.NEAREST).save(folder / name)
        (folder / name).with_suffix(".txt").write_text(CAPTION.format(hair=HAIRS[i % len(HAIRS)]) + "\n")
    return folder.parent


def write_prompts(spec: RunSpec) -> Path:
    path = spec.work / "prompts.txt"
    opts = f"--n blurry --w {spec.resolution} --h {spec.resolution} --s {spec.sample_steps} --l 7.5"
    path.write_text("".join(f"{p} {opts} --d {1000 + i}\n" for i, p in enumerate(PROMPTS)))
    return path


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def _toml(sections: dict[str, dict[str, object]]) -> str:
    out = []
    for name, table in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


def write_kohya_config(spec: RunSpec, data: Path, prompts: Path) -> Path:
    path = spec.work / "training.toml"
    path.write_text("# train_network.py --config_file: the smallest run that shows every step\n" + _toml({
        "model_arguments": {"pretrained_model_name_or_path": str(spec.model)},
        "additional_network_arguments": {
            "network_module": "networks.lora", "network_dim": 4, "network_alpha": 2,
            "network_train_unet_only": False,  # text-encoder LoRA too: the daemon checks it applies
        },
        "optimizer_arguments": {
            # a high rate so a few steps move the LoRA visibly off zero
            "optimizer_type": "AdamW", "learning_rate": 1e-3, "lr_scheduler": "constant",
        },
        "dataset_arguments": {
            "train_data_dir": str(data), "resolution": f"{spec.resolution},{spec.resolution}",
            "caption_extension": ".txt", "enable_bucket": False, "cache_latents": True,
        },
        "training_arguments": {
            "output_dir": str(spec.work / "output"), "output_name": OUTPUT_NAME,
            "save_model_as": "safetensors", "save_every_n_epochs": 1,
            "max_train_epochs": spec.epochs, "train_batch_size": spec.batch,
            "mixed_precision": "no", "seed": 42, "max_data_loader_n_workers": 0,
            "tokenizer_cache_dir": str(spec.tokenizer_cache),
            # kohya's TensorBoard logs (loss/average, lr/unet ...): status shows its loss
            "logging_dir": str(spec.work / "tensorboard"), "log_prefix": f"{OUTPUT_NAME}_",
        },
        "sample_prompt_arguments": {
            "sample_prompts": str(prompts), "sample_every_n_epochs": 1, "sample_sampler": "euler_a",
        },
    }))
    return path


def write_watcher_config(spec: RunSpec) -> Path:
    accelerate = str(spec.kohya_venv / "bin" / "accelerate")
    # `env -u PYTHONPATH` keeps this checkout off kohya's path; env and nice exec, so the pid
    # the launcher records is accelerate's and the stop still reaches its whole group.
    command = ["env", "-u", "PYTHONPATH", "nice", "-n", "19", accelerate, "launch",
               "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(spec.threads),
               "train_network.py", "--config_file", "{kohya_config}"]
    sampling: dict[str, object] = {"prompts_file": "prompts.txt", "review_epochs": []}
    if spec.source == "trainer":
        sampling = {"source": "trainer", "prompts_file": "prompts.txt", "review_epochs": [],
                    "set_timeout_s": 300.0}
    sections: dict[str, dict[str, object]] = {
        "run": {"name": RUN_NAME, "kohya_config": "training.toml", "state_dir": "state",
                "expected_epoch_minutes": 5.0},
        "model": {"device": "cpu", "dtype": "float32", "scheduler": "euler_a",
                  "steps": spec.sample_steps, "width": spec.resolution,
                  "height": spec.resolution, "batch_size": len(PROMPTS)},
        "sampling": sampling,
        "results": {"repo": "results", "dir": "runs"},
        "trainer": {"command": command, "cwd": str(spec.sd_scripts), "log_file": "logs/trainer.log",
                    "stop_grace_s": 30.0},
        "supabase": {"enabled": False},
    }
    rule = {"name": f"green_background_by_epoch_{spec.stop_epoch}", "metric": "background_match_rate",
            "comparison": ">=", "threshold": 0.5, "epoch": spec.stop_epoch, "mode": "by", "action": "stop"}
    text = _toml(sections) + "\n[[criteria]]\n" + "\n".join(f"{k} = {_toml_value(v)}" for k, v in rule.items())
    path = spec.work / "watcher.toml"
    path.write_text("# epochwatch launch --config: the e2e run on real kohya (scripts/e2e_kohya)\n" + text + "\n")
    return path


def prepare(spec: RunSpec) -> Path:
    spec.work.mkdir(parents=True)
    data = write_dataset(spec)
    prompts = write_prompts(spec)
    write_kohya_config(spec, data, prompts)
    return write_watcher_config(spec)
