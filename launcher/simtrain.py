"""A stand-in for kohya-ss `train_network.py`: writes real kohya-format LoRA epoch files.

What a watcher sees is what kohya produces: `{output_name}-{epoch:06d}.safetensors` after
each saved epoch and `{output_name}.safetensors` for the last one, written in place (not
renamed) so the file grows while it is written, with kohya's `ss_*` / `sshs_*` / `modelspec.*`
header metadata (all values strings). The weights are random but deterministic per
(seed, epoch) and drift smoothly from epoch to epoch, so every epoch renders differently.

torch is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.kohya_lora import family_metadata
from watcher.kohya import (
    UNET_PREFIX,
    is_text_encoder_module,
    lora_target_names,
    make_lora_state_dict,
)

if TYPE_CHECKING:
    import torch

# A stand-in's pace when the config names no dataset size ([run.dataset] num_images); a run's
# own size lives in its config (steps_per_epoch below), never here.
DEFAULT_STEPS_PER_EPOCH = 100
WRITE_CHUNKS = 8


def steps_per_epoch(num_images: int | None, kohya: Mapping[str, Any]) -> int:
    """kohya's optimizer steps in one epoch: the images in batches of train_batch_size, then
    gradient_accumulation_steps batches a step (its progress bar counts these);
    DEFAULT_STEPS_PER_EPOCH when the dataset size is unknown."""
    if not num_images:
        return DEFAULT_STEPS_PER_EPOCH
    batch = max(1, int(kohya.get("train_batch_size", 1)))
    accumulation = max(1, int(kohya.get("gradient_accumulation_steps", 1)))
    return max(1, math.ceil(math.ceil(num_images / batch) / accumulation))


def epoch_file_name(output_name: str, epoch: int, last: bool) -> str:
    """kohya's names: numbered per epoch, the final epoch without a number."""
    return f"{output_name}.safetensors" if last else f"{output_name}-{epoch:06d}.safetensors"


def _data_hashes(serialized: bytes) -> tuple[str, str]:
    """(model hash, legacy hash) as the sshs_* fields: sha256 of the tensor data that follows
    the header, and the short sha256 of a 64 KiB window at 1 MiB that older tools used."""
    header_len = int.from_bytes(serialized[:8], "little")
    model_hash = hashlib.sha256(serialized[8 + header_len :]).hexdigest()
    legacy_hash = hashlib.sha256(serialized[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
    return model_hash, legacy_hash


def kohya_metadata(
    *,
    session_id: int,
    training_started_at: float,
    output_name: str,
    epoch: int,
    epochs: int,
    steps: int,
    steps_per_epoch: int,
    network_dim: int,
    network_alpha: float,
    seed: int,
    model_name: str,
    network_args: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The header metadata kohya's train_network.py writes (the fields a watcher reads, plus
    the common training parameters), every value a string as kohya stores them."""
    extra = dict(extra or {})
    keep_tokens = extra.pop("keep_tokens", 1)
    caption_dropout = extra.pop("caption_dropout_rate", 0.0)
    meta: dict[str, Any] = {
        "ss_session_id": session_id,
        "ss_training_started_at": training_started_at,
        "ss_output_name": output_name,
        "ss_learning_rate": extra.pop("learning_rate", 1e-4),
        "ss_text_encoder_lr": extra.pop("text_encoder_lr", None),
        "ss_unet_lr": extra.pop("unet_lr", None),
        "ss_num_train_images": steps_per_epoch,
        "ss_num_reg_images": 0,
        "ss_num_batches_per_epoch": steps_per_epoch,
        "ss_num_epochs": epochs,
        "ss_gradient_checkpointing": False,
        "ss_gradient_accumulation_steps": 1,
        "ss_max_train_steps": steps_per_epoch * epochs,
        "ss_lr_warmup_steps": 0,
        "ss_lr_scheduler": extra.pop("lr_scheduler", "constant"),
        "ss_network_module": "networks.lora",
        "ss_network_dim": network_dim,
        "ss_network_alpha": network_alpha,
        "ss_network_dropout": None,
        "ss_network_args": json.dumps(dict(network_args)) if network_args else None,
        "ss_mixed_precision": extra.pop("mixed_precision", "fp16"),
        "ss_full_fp16": False,
        "ss_v2": False,
        "ss_base_model_version": "sd_v1",
        "ss_clip_skip": extra.pop("clip_skip", None),
        "ss_max_token_length": extra.pop("max_token_length", None),
        "ss_cache_latents": True,
        "ss_seed": seed,
        "ss_noise_offset": extra.pop("noise_offset", None),
        "ss_optimizer": extra.pop("optimizer_type", "AdamW8bit"),
        "ss_max_grad_norm": 1.0,
        "ss_caption_dropout_rate": caption_dropout,
        "ss_caption_dropout_every_n_epochs": 0,
        "ss_caption_tag_dropout_rate": 0.0,
        "ss_prior_loss_weight": 1.0,
        "ss_min_snr_gamma": extra.pop("min_snr_gamma", None),
        "ss_sd_model_name": model_name,
        "ss_resolution": "(512, 512)",
        "ss_training_comment": "epochwatch simtrain (simulated training)",
        "ss_datasets": json.dumps(
            [{"is_dreambooth": True, "batch_size_per_device": 1, "num_train_images": steps_per_epoch,
              "subsets": [{"keep_tokens": keep_tokens, "caption_dropout_rate": caption_dropout,
                           "num_repeats": 1}]}]
        ),
        "ss_training_finished_at": time.time(),
        "ss_steps": steps,
        "ss_epoch": epoch,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": output_name,
        "modelspec.resolution": "512x512",
        "modelspec.prediction_type": "epsilon",
        "modelspec.date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if meta["ss_network_args"] is None:
        del meta["ss_network_args"]  # kohya writes it only when network_args were given
    for key, value in extra.items():  # further kohya arguments, kept under their ss_ names
        meta.setdefault(key if key.startswith("ss_") else f"ss_{key}", value)
    return {k: str(v) for k, v in meta.items()}


def serialize_lora(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with the sshs_* hashes computed as kohya does: over a serialisation
    that carries only the ss_* training fields, so user-editable fields don't change them."""
    from safetensors.torch import save

    training_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    model_hash, legacy_hash = _data_hashes(save(tensors, training_only))
    full = dict(metadata, sshs_model_hash=model_hash, sshs_legacy_hash=legacy_hash)
    return save(tensors, full)


def write_in_place(path: Path, data: bytes, write_s: float, chunks: int = WRITE_CHUNKS) -> None:
    """Write data into path in chunks with pauses, as a trainer streaming a save would:
    a reader sees the file exist and grow; there is no temporary name and no rename."""
    chunks = max(1, min(chunks, len(data)))
    size = math.ceil(len(data) / chunks)
    pause = write_s / chunks if write_s > 0 else 0.0
    with open(path, "wb") as f:
        for start in range(0, len(data), size):
            f.write(data[start : start + size])
            f.flush()  # make the partial size visible to watchers
            if pause and start + size < len(data):
                time.sleep(pause)


def _epoch_state(base: dict[str, Any], drift: dict[str, Any], progress: float) -> dict[str, Any]:
    """Weights at a point of 'training': a fixed direction that grows, plus a small drift."""
    out = {}
    for key, value in base.items():
        if key.endswith(".alpha"):
            out[key] = value
        else:
            grown = value.float() * math.sqrt(progress) + drift[key].float() * 0.15
            out[key] = grown.to(value.dtype).contiguous()
    return out


class TrainingLog:
    """What kohya prints and logs while it trains: `epoch N/M` lines and a `steps:` progress
    bar with `avr_loss` on `out`, and with a logging_dir, TensorBoard event files with
    kohya's tags in kohya's layout (`{logging_dir}/{log_prefix}{YYYYmmddHHMMSS}/network_train/`,
    written by torch's SummaryWriter as accelerate's tracker does, flushed after each log).

    The loss falls with training, with noise; `loss/average` is kohya's moving average over
    the last epoch's worth of steps; from the middle of epoch `nan_at_epoch` it is NaN.
    """

    def __init__(self, out: TextIO, *, steps_per_epoch: int, epochs: int, seed: int,
                 learning_rate: float, logging_dir: Path | None, log_prefix: str = "",
                 nan_at_epoch: int | None = None, hparams: Mapping[str, Any] | None = None) -> None:
        self.out, self.steps_per_epoch, self.epochs = out, steps_per_epoch, epochs
        self.learning_rate, self.nan_at_epoch = learning_rate, nan_at_epoch
        self.rng = random.Random(seed)
        self.recent: list[float] = []
        self.started = time.monotonic()
        self.writer: Any = None
        if logging_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
            self.writer = SummaryWriter(str(Path(logging_dir) / f"{log_prefix}{stamp}" / "network_train"))
            if hparams:
                self.writer.add_hparams(dict(hparams), metric_dict={})
            self.writer.flush()

    def _loss(self, global_step: int, epoch: int, step_in_epoch: int) -> float:
        if self.nan_at_epoch is not None and (epoch, step_in_epoch) >= (self.nan_at_epoch, self.steps_per_epoch // 2):
            return float("nan")
        progress = global_step / self.steps_per_epoch
        return 0.05 + 0.1 * math.exp(-0.3 * progress) + self.rng.uniform(0.0, 0.02)

    def train_epoch(self, epoch: int, seconds: float) -> float:
        """The steps of one epoch over `seconds`; returns the epoch's average loss."""
        print(f"\nepoch {epoch}/{self.epochs}\n", file=self.out, flush=True)
        # Each step sleeps until its share of `seconds` is over: sleeping a fixed pause per step
        # made an epoch last many times `seconds` on a busy machine (every wake-up came late).
        begun = time.monotonic()
        total = self.steps_per_epoch * self.epochs
        for i in range(self.steps_per_epoch):
            if seconds > 0:
                time.sleep(max(0.0, begun + seconds * (i + 1) / self.steps_per_epoch - time.monotonic()))
            global_step = (epoch - 1) * self.steps_per_epoch + i + 1
            current = self._loss(global_step, epoch, i)
            self.recent = (self.recent + [current])[-self.steps_per_epoch:]
            average = sum(self.recent) / len(self.recent)
            if self.writer is not None:
                lr = self.learning_rate
                for tag, value in (("loss/current", current), ("loss/average", average),
                                   ("lr/unet", lr), ("lr/textencoder", lr / 2)):
                    self.writer.add_scalar(tag, value, global_step=global_step)
                self.writer.flush()
            if (i + 1) % max(1, self.steps_per_epoch // 4) == 0 or i + 1 == self.steps_per_epoch:
                elapsed = time.monotonic() - self.started
                rate = global_step / elapsed if elapsed > 0 else 0.0
                print(f"steps: {100 * global_step // total:3d}%|{'#' * (10 * global_step // total):<10}| "
                      f"{global_step}/{total} [{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}<00:00, "
                      f"{rate:.2f}it/s, avr_loss={average:.4g}]", file=self.out, flush=True)
        if self.writer is not None:
            self.writer.add_scalar("loss/epoch_average", average, global_step=epoch)
            self.writer.flush()
        return average

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def simulate_training(
    model_dir: str | Path,
    output_dir: str | Path,
    output_name: str,
    epochs: int,
    interval_s: float,
    network_dim: int,
    network_alpha: float,
    session_id: int | None = None,
    seed: int = 0,
    save_every_n_epochs: int = 1,
    start_epoch: int = 1,
    *,
    steps_per_epoch: int = DEFAULT_STEPS_PER_EPOCH,
    save_dtype: str = "float16",
    write_s: float | None = None,
    scale: float = 1.0,
    save_last_n_epochs: int | None = None,
    conv_dim: int | None = None,
    conv_alpha: float = 1.0,
    extra_metadata: Mapping[str, Any] | None = None,
    log: TextIO | None = None,
    logging_dir: Path | None = None,
    log_prefix: str = "",
    nan_at_epoch: int | None = None,
) -> list[Path]:
    """Run a simulated training and return the files written, in order.

    Each epoch takes about interval_s seconds (sleep, then the save); the save is written in
    place over write_s seconds (default: a tenth of the interval, at most 1 s). Epochs that are
    multiples of save_every_n_epochs are saved as numbered files; the last epoch is saved as
    `{output_name}.safetensors`. save_last_n_epochs deletes older numbered files, as kohya does.
    conv_dim / conv_alpha: as kohya's network_args, adding the UNet's ResNet and sampler layers.
    One line per epoch goes to log (stdout by default), flushed, with kohya's progress lines
    (`TrainingLog`); logging_dir adds kohya-format TensorBoard files, and nan_at_epoch makes
    the loss NaN from the middle of that epoch on.
    """
    if epochs < 1 or start_epoch < 1 or start_epoch > epochs:
        raise ValueError(f"need 1 <= start_epoch ({start_epoch}) <= epochs ({epochs})")
    if network_dim < 1 or save_every_n_epochs < 1:
        raise ValueError("network_dim and save_every_n_epochs must be >= 1")
    out = log or sys.stdout
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    session = session_id if session_id is not None else random.randint(0, 2**32 - 1)
    started_at = time.time()
    write_s = min(1.0, interval_s * 0.1) if write_s is None else write_s
    targets = lora_target_names(model_dir, conv=conv_dim is not None)
    n_unet = sum(1 for name in targets if name.startswith(UNET_PREFIX))
    n_te = sum(1 for name in targets if is_text_encoder_module(name))
    print(
        f"simtrain: session {session}, {output_name}: {n_unet} unet + {n_te} text-encoder LoRA "
        f"modules, dim {network_dim}, alpha {network_alpha}, epochs {start_epoch}..{epochs}",
        file=out, flush=True,
    )
    conv: dict[str, Any] = {"conv_rank": conv_dim, "conv_alpha": conv_alpha}
    direction = make_lora_state_dict(targets, network_dim, network_alpha, seed, scale, dtype=save_dtype,
                                     **conv)
    written: list[Path] = []
    saved_numbered: list[Path] = []
    learning_rate = float((extra_metadata or {}).get("learning_rate") or 1e-4)
    training = TrainingLog(out, steps_per_epoch=steps_per_epoch, epochs=epochs, seed=seed,
                           learning_rate=learning_rate, logging_dir=logging_dir,
                           log_prefix=log_prefix, nan_at_epoch=nan_at_epoch,
                           hparams={"output_name": output_name, "max_train_epochs": epochs,
                                    "network_dim": network_dim, "learning_rate": learning_rate})
    for epoch in range(start_epoch, epochs + 1):
        last = epoch == epochs
        save = last or epoch % save_every_n_epochs == 0
        loss = training.train_epoch(epoch, max(0.0, interval_s - (write_s if save else 0.0)))
        steps = epoch * steps_per_epoch
        line = f"epoch {epoch}/{epochs}: steps {steps}/{epochs * steps_per_epoch}, avr_loss={loss:.4f}"
        if not save:
            print(line, file=out, flush=True)
            continue
        drift = make_lora_state_dict(targets, network_dim, network_alpha, seed * 1000 + epoch, scale,
                                     dtype=save_dtype, **conv)
        tensors = _epoch_state(direction, drift, epoch / epochs)
        network_args = {"conv_dim": str(conv_dim), "conv_alpha": str(conv_alpha)} if conv_dim else None
        metadata = kohya_metadata(
            session_id=session, training_started_at=started_at, output_name=output_name,
            epoch=epoch, epochs=epochs, steps=steps, steps_per_epoch=steps_per_epoch,
            network_dim=network_dim, network_alpha=network_alpha, seed=seed,
            model_name=Path(str(model_dir)).name, network_args=network_args, extra=extra_metadata,
        )
        metadata.update(family_metadata(model_dir))  # SDXL: sdxl_train_network.py's fields
        path = output_dir / epoch_file_name(output_name, epoch, last)
        data = serialize_lora(tensors, metadata)
        print(f"{line}, saving checkpoint: {path}", file=out, flush=True)
        write_in_place(path, data, write_s)
        written.append(path)
        if not last:
            saved_numbered.append(path)
            if save_last_n_epochs is not None and len(saved_numbered) > save_last_n_epochs:
                old = saved_numbered.pop(0)
                old.unlink(missing_ok=True)
                print(f"removing old checkpoint: {old}", file=out, flush=True)
    training.close()
    print(f"simtrain: training finished, model saved: {written[-1]}", file=out, flush=True)
    return written
