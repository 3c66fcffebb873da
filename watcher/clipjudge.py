"""An optional learned judge: CLIPScore (prompt adherence) from a local CLIP model.

`[evaluation] clip_model = "/models/clip-vit-b-32"` names a folder holding a transformers
CLIPModel and its processor (`save_pretrained` layout). It is only ever read from that folder
(`local_files_only`): never a hub lookup. The score is CLIPScore in the 0-100 form
(torchmetrics' `CLIPScore`): 100 * max(cos(image embedding, text embedding), 0). Hessel et
al.'s paper form, 2.5 * max(cos, 0), is this / 40.

Advisory only: the epoch metric `clip_score` is shown, stored and usable in alert rules; a
stop rule on it needs an explicit opt-in (watcher.rules.LEARNED_METRICS). CLIP's text side
reads at most 77 tokens: longer prompts are cut there, as CLIPScore does.

torch / transformers are imported inside functions only (`score` stays torch-free when no
clip_model is set; see INTERFACES.md).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# 100 * max(cos, 0): the torchmetrics CLIPScore scale (0-100)
CLIP_SCALE = 100.0
BATCH = 16


def clip_model_problem(folder: Path) -> str | None:
    """Why `folder` cannot be a CLIP model folder (None when it looks like one). Checked at
    config load, so a wrong path is refused in one line before anything is rendered."""
    if not folder.is_dir():
        return f"{folder}: no such folder (clip_model must be a local CLIP model folder)"
    if not (folder / "config.json").is_file():
        return f"{folder}: no config.json (clip_model must be a transformers CLIPModel folder)"
    return None


class ClipJudge:
    """A loaded CLIP model and processor; `scores` gives one CLIPScore per (image, prompt)."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from watcher.pipeline import quiet_libraries

        quiet_libraries()
        import torch
        from transformers import CLIPModel, CLIPProcessor

        self.folder = Path(folder)
        self.device = device
        try:
            model: Any = CLIPModel.from_pretrained(str(folder), local_files_only=True)
            self.model = model.to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{folder}: cannot load a CLIP model: {first}") from None
        self._torch = torch

    def scores(self, images: Sequence[Image.Image | np.ndarray], prompts: Sequence[str]) -> list[float]:
        """CLIPScore (0-100) of each image against its own prompt, rounded to 4 places."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        out: list[float] = []
        for start in range(0, len(images), BATCH):
            out.extend(self._batch(images[start:start + BATCH], prompts[start:start + BATCH]))
        return out

    def _batch(self, images: Sequence[Image.Image | np.ndarray], prompts: Sequence[str]) -> list[float]:
        torch = self._torch
        pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, dtype=np.uint8))
               for im in images]
        inputs: Any = self.processor(text=list(prompts), images=[im.convert("RGB") for im in pil],
                                     return_tensors="pt", padding=True, truncation=True,
                                     max_length=self.model.config.text_config.max_position_embeddings)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            image_emb = self.model.get_image_features(pixel_values=inputs["pixel_values"])
            text_emb = self.model.get_text_features(input_ids=inputs["input_ids"],
                                                    attention_mask=inputs["attention_mask"])
        image_emb = _as_tensor(image_emb)
        text_emb = _as_tensor(text_emb)
        cos = torch.nn.functional.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
        return [round(CLIP_SCALE * max(float(c), 0.0), 4) for c in cos.cpu()]


def _as_tensor(features: Any) -> Any:
    """transformers 5 may return an output object instead of the bare embedding tensor."""
    if hasattr(features, "pooler_output") and not hasattr(features, "shape"):
        return features.pooler_output
    return features


@functools.lru_cache(maxsize=2)
def judge_for(folder: str, device: str = "cpu") -> ClipJudge:
    """One loaded judge per (folder, device), kept for the process: the daemon scores every
    epoch with the same model, so it is loaded once."""
    return ClipJudge(Path(folder), device)


def build_tiny_clip(out_dir: Path, seed: int = 0) -> Path:
    """A tiny, randomly initialised CLIPModel + CLIPProcessor saved at out_dir, built offline
    (the tiny SD model's byte-level tokenizer, watcher.tinymodel): for tests and the demo of
    the plumbing. Its scores mean nothing; a real judge is a real CLIP checkpoint."""
    from watcher.pipeline import quiet_libraries

    quiet_libraries()
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    from watcher.tinymodel import MAX_TOKENS, TEXT_HIDDEN, _text_config, _write_tokenizer_files

    out_dir = Path(out_dir)
    vocab_file, merges_file = _write_tokenizer_files(out_dir / "_vocab")
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=MAX_TOKENS)
    text = _text_config(tokenizer, projection=False)
    vision = CLIPVisionConfig(hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8,
                              projection_dim=TEXT_HIDDEN)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=TEXT_HIDDEN)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(str(out_dir), safe_serialization=True)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    shutil.rmtree(out_dir / "_vocab")
    return out_dir
