"""`epochwatch simtrain --config FILE [--epochs N] [--interval S]`: the stand-in trainer.

Reads the run's model, output folder, output name, epochs and network size from the watcher
config (values the config leaves out come from its kohya config) and writes kohya-format LoRA
epoch files the way train_network.py does, as many steps an epoch as kohya would take for
`[run.dataset] num_images` (its batch size and gradient accumulation). On SIGTERM it stops
at once, leaving a partly written file if it was saving, and exits by that signal, as a
killed trainer would.
"""

from __future__ import annotations

import os
import signal
import sys
from argparse import Namespace
from types import FrameType
from typing import Any

from watcher.commands._common import load
from watcher.errors import CommandError
from watcher.kohya import kohya_network_arg
from watcher.training.tensorboard import logging_dir

DEFAULT_INTERVAL_S = 5.0
# kohya arguments copied into the files' ss_* metadata when the kohya config has them
_KOHYA_METADATA_KEYS = (
    "learning_rate", "unet_lr", "text_encoder_lr", "lr_scheduler", "optimizer_type",
    "mixed_precision", "clip_skip", "max_token_length", "noise_offset", "min_snr_gamma",
    "keep_tokens", "caption_dropout_rate",
)


class _Terminated(BaseException):
    """Raised from the SIGTERM handler to unwind out of sleep or a write at once."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def run(args: Namespace) -> int:
    from launcher.simtrain import simulate_training, steps_per_epoch

    cfg = load(args.config)
    kohya: dict[str, Any] = dict(cfg.kohya or {})
    epochs = args.epochs if args.epochs is not None else cfg.run.max_train_epochs
    if epochs is None:
        raise CommandError("no epoch count: set run.max_train_epochs, the kohya config's, or --epochs")
    interval = args.interval if args.interval is not None else DEFAULT_INTERVAL_S
    if epochs < 1:
        raise CommandError(f"--epochs must be >= 1, got {epochs}")
    if interval < 0:
        raise CommandError(f"--interval must be >= 0, got {interval}")
    dim = int(kohya.get("network_dim", 32))
    alpha = float(kohya.get("network_alpha", 16))
    precision = str(kohya.get("save_precision", "fp16"))
    save_dtype = {"fp16": "float16", "bf16": "bfloat16", "float": "float32"}.get(precision, "float16")
    last_n = kohya.get("save_last_n_epochs")
    extra = {k: kohya[k] for k in _KOHYA_METADATA_KEYS if k in kohya}
    conv_dim_arg = kohya_network_arg(kohya, "conv_dim")
    conv_alpha_arg = kohya_network_arg(kohya, "conv_alpha")
    try:
        conv_dim = int(conv_dim_arg) if conv_dim_arg else None
        conv_alpha = float(conv_alpha_arg) if conv_alpha_arg else 1.0
    except ValueError as exc:
        raise CommandError(f"kohya network_args: conv_dim/conv_alpha must be numbers ({exc})") from exc

    if args.nan_at_epoch is not None and not 1 <= args.nan_at_epoch <= epochs:
        raise CommandError(f"--nan-at-epoch must be between 1 and {epochs}, got {args.nan_at_epoch}")
    tb_dir, tb_prefix = logging_dir(cfg)  # kohya's logging_dir and log_prefix, as kohya uses them

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        simulate_training(
            cfg.base_model, cfg.output_dir, cfg.output_name, epochs, interval,
            dim, alpha, seed=int(kohya.get("seed", 0)),
            save_every_n_epochs=int(cfg.run.save_every_n_epochs or 1),
            steps_per_epoch=steps_per_epoch(cfg.run.dataset.num_images, kohya),
            save_dtype=save_dtype,
            save_last_n_epochs=int(last_n) if last_n else None,
            conv_dim=conv_dim, conv_alpha=conv_alpha,
            extra_metadata=extra,
            logging_dir=tb_dir, log_prefix=tb_prefix, nan_at_epoch=args.nan_at_epoch,
        )
    except _Terminated:
        print("simtrain: terminated by SIGTERM", flush=True)
        sys.stderr.flush()
        # die by the signal itself so the parent sees what it would see for kohya
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return 143  # not reached
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return 0
