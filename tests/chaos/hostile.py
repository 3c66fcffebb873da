"""Hostile files for the watched folder: each one built for real (headers, pickles, zips,
links, FIFOs, odd names) with the reason the daemon must give when it refuses it.

`plant(folder, outside, valid, marker)` writes them all and returns {file name: reason
substring}. A separate `model_mismatch` file has kohya keys that do not fit the model:
settle cannot know that, so the pipeline must refuse it (a failed checkpoint, not a
refused file). None of them may ever be loaded; the pickles would create `marker` if
anything unpickled them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save as save_bytes

NAME = "e2e_lora"
_MODULE = "lora_unet_mid_block_attentions_0_proj_in"


class _Payload:
    """Unpickling this runs os.mkdir(marker): proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.marker,)


def _lora(tensors: dict[str, np.ndarray], **meta: str) -> bytes:
    return save_bytes(tensors, metadata={"ss_output_name": NAME, **meta})


def _raw_header(header: dict[str, object], data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _pair(down: tuple[int, ...], up: tuple[int, ...], dtype: type = np.float16) -> dict[str, np.ndarray]:
    return {f"{_MODULE}.lora_down.weight": np.ones(down, dtype),
            f"{_MODULE}.lora_up.weight": np.ones(up, dtype),
            f"{_MODULE}.alpha": np.array(2.0, np.float16)}


def plant(folder: Path, outside: Path, valid: list[Path], marker: Path) -> dict[str, str]:
    """Write every hostile file into folder; {name: what the refusal must say}."""
    outside.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, reason: str) -> None:
        # Written beside the folder and renamed in: each file appears whole, so it is
        # judged (and alerted on) once, not again when a half-written one grows.
        scratch = outside / ".scratch"
        scratch.write_bytes(data)
        os.rename(scratch, folder / name)
        expected[name] = reason

    # Header lengths: absurd (refused at once), and large but plausible (only the file's end
    # shows it is a lie: refused once the trainer has ended and the file never grew).
    put("huge_header.safetensors", struct.pack("<Q", 2**62) + b"{}", "exceeds the")
    put("long_claim.safetensors", struct.pack("<Q", 50 * 2**20) + b'{"__metadata__":{}}',
        "incomplete when the trainer ended")
    # Offsets past the end of the file: 2**38 bytes of float32 that are not there.
    past = _raw_header({"__metadata__": {"ss_output_name": NAME, "ss_epoch": "5"},
                        f"{_MODULE}.lora_down.weight": {"dtype": "F32", "shape": [4, 2**34],
                                                        "data_offsets": [0, 2**38]}}, b"\0" * 64)
    put("past_eof.safetensors", past, "incomplete when the trainer ended")
    # Tensors of the wrong dtype or shape, keys that are not LoRA keys, another run's file.
    put(f"{NAME}-000005.safetensors", _lora(_pair((4, 64), (64, 4), np.int32), ss_epoch="5"),
        "LoRA weights are floats")
    put(f"{NAME}-000006.safetensors", _lora(_pair((4, 64), (64, 2)), ss_epoch="6"), "rank mismatch")
    put(f"{NAME}-000008.safetensors",
        _lora({"model.diffusion_model.input_blocks.0.0.weight": np.ones((4, 4), np.float16)},
              ss_epoch="8"), "is not a kohya LoRA key")
    put(f"{NAME}-000009.safetensors", save_bytes(_pair((4, 64), (64, 4)), metadata={
        "ss_output_name": "someone_elses_lora", "ss_epoch": "9"}), "foreign checkpoint")
    # Pickles: renamed to .safetensors, a torch.save-style zip, and an honest .ckpt.
    put(f"{NAME}-000010.safetensors", pickle.dumps(_Payload(marker), protocol=4), "pickle data")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Payload(marker), protocol=2))
    put("torch_save.safetensors", buf.getvalue(), "zip archive")
    put(f"{NAME}-000011.ckpt", pickle.dumps(_Payload(marker), protocol=2), "is not a .safetensors file")
    # A link to a perfectly valid LoRA outside the folder: still refused, never loaded.
    target = outside / "elsewhere.safetensors"
    target.write_bytes(valid[0].read_bytes())
    (folder / f"{NAME}-000012.safetensors").symlink_to(target)
    expected[f"{NAME}-000012.safetensors"] = "symlink pointing outside the watched folder"
    # Not a file at all: a FIFO (opening it must not block the daemon).
    os.mkfifo(folder / f"{NAME}-000013.safetensors")
    expected[f"{NAME}-000013.safetensors"] = "not a regular file"
    # Odd names around valid content: the name alone gets them refused.
    content = valid[1].read_bytes()
    put(f"{NAME}-00000\n4.safetensors", content, "control characters")
    put(os.fsdecode(b"e2e_lora-\xff\xfe.safetensors"), content, "not valid UTF-8")
    put(f"{NAME}-000002 (copy).safetensors", content, "foreign checkpoint")
    put("épöch ünïcödé ✓.safetensors", content, "foreign checkpoint")
    put("-rf --no-preserve-root.safetensors", content, "foreign checkpoint")
    put("x" * 200 + ".safetensors", content, "foreign checkpoint")
    return expected


def model_mismatch(folder: Path) -> tuple[str, str]:
    """A kohya LoRA for a module this model does not have: (file name, reason substring)."""
    name = f"{NAME}-000007.safetensors"
    tensors = {"lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight": np.ones((4, 64), np.float16),
               "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight": np.ones((64, 4), np.float16)}
    scratch = folder.parent / f".{name}"
    scratch.write_bytes(_lora(tensors, ss_epoch="7"))
    os.rename(scratch, folder / name)
    return name, "not a usable kohya LoRA for this model"
