"""What the learned judge costs per image: CLIPScore with a ViT-B/32-shaped CLIPModel
(transformers' CLIPConfig defaults: the shape of openai/clip-vit-base-patch32), randomly
initialised and built offline, so the figure is compute only (weights do not change it).

    .venv/bin/python -m bench.judge.clip_cost [--images 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from watcher.clipjudge import ClipJudge
    from watcher.tinymodel import MAX_TOKENS, _write_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clip-b32-shape"
        vocab, merges = _write_tokenizer_files(Path(tmp) / "vocab")
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_TOKENS)
        config = CLIPConfig()
        config.text_config.vocab_size = len(tokenizer)  # the byte-level stand-in vocabulary
        config.text_config.bos_token_id = tokenizer.bos_token_id
        config.text_config.eos_token_id = tokenizer.eos_token_id
        config.text_config.pad_token_id = tokenizer.pad_token_id
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(str(folder))
        CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(str(folder))
        t0 = time.perf_counter()
        judge = ClipJudge(folder, args.device)
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(args.images)]
        prompts = ["pixel art portrait, pink hair, solid green background (#00ff00)"] * args.images
        judge.scores(images[:2], prompts[:2])  # warm-up
        t0 = time.perf_counter()
        judge.scores(images, prompts)
        per_image = (time.perf_counter() - t0) / args.images
        params = sum(p.numel() for p in judge.model.parameters())
    print(f"ViT-B/32-shaped CLIP ({params / 1e6:.0f} M parameters) on {args.device}: "
          f"load {load_s:.2f} s, {per_image * 1000:.0f} ms per 512 px image (batches of 16)")


if __name__ == "__main__":
    main()
