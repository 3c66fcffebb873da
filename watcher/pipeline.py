"""The warm sampling pipeline: load the base model once, swap each epoch's kohya LoRA in.

Stable Diffusion 1.x (`StableDiffusionPipeline`) or XL (`StableDiffusionXLPipeline`, two text
encoders, `lora_te1_` / `lora_te2_` and SGM-named UNet modules in kohya's files): the family
comes from the config (`watcher.family`), else from the model's own files.

Loading a Stable Diffusion pipeline costs seconds to minutes; swapping a LoRA costs
milliseconds. So the daemon keeps one `SamplePipeline` for the whole run and, per epoch,
`apply_lora(path)` (the previous epoch's adapter is deleted first, so memory stays flat) and
`generate(prompts, batch_size)`.

A LoRA is checked before it touches the model: safetensors only (never unpickled), kohya keys
only, every module present in this model with fitting shapes. After loading, the adapter is
verified to sit on the expected number of modules, and a text-encoder LoRA must really change
the text embedding (diffusers' text-encoder path has silently dropped weights before).

torch / diffusers are imported inside methods only (see INTERFACES.md).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.family import FAMILIES, family_of_lora, family_of_model
from watcher.kohya import (
    SDXL_TE_PREFIXES,
    TE_PREFIX,
    Shape,
    check_fits,
    kohya_targets,
    looks_like_path,
)
from watcher.prompts import SamplePrompt

if TYPE_CHECKING:
    from PIL import Image

ADAPTER = "epoch"
SCHEDULERS = ("dpmsolver++", "euler_a", "ddim", "pndm")
DTYPES = ("auto", "float32", "float16", "bfloat16")
# A text-encoder LoRA whose weight change exceeds this must change the probe embedding, even
# in float16 (smaller changes can round away and would not change images either).
MIN_VISIBLE_DELTA = 1e-3
_PROBE_PROMPT = "pixel art portrait, solid green background (#00ff00)"
# diffusers component -> the kohya prefixes of its LoRA modules
COMPONENT_PREFIXES = {"text_encoder": (TE_PREFIX, SDXL_TE_PREFIXES[0]),
                      "text_encoder_2": (SDXL_TE_PREFIXES[1],)}


class PipelineError(Exception):
    """The base model cannot be loaded or used; the message is one line for the user."""


class LoraLoadError(PipelineError):
    """A file is not a usable kohya LoRA for this model; the message says why."""


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise PipelineError(f"dtype {dtype!r} unknown; use one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if dtype == "float16" and device == "cpu":
        raise PipelineError("float16 is not supported on CPU; use float32 or bfloat16")
    return dtype


def quiet_libraries() -> None:
    """Silence progress bars, 'No LoRA keys' notices and transformers' LOAD REPORT tables
    (it lists the injected adapter weights as MISSING although they are applied)."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    logging.getLogger("peft").setLevel(logging.ERROR)


def make_scheduler(name: str, config: Any) -> Any:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        PNDMScheduler,
    )

    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "pndm":
        return PNDMScheduler.from_config(config)
    raise PipelineError(f"scheduler {name!r} unknown; use one of {', '.join(SCHEDULERS)}")


def _largest_weight_change(state: dict[str, Any], prefix: str | tuple[str, ...]) -> float:
    """Largest |entry| of up @ down * alpha / rank over the LoRA's modules under prefix."""
    largest = 0.0
    for key, down in state.items():
        if not (key.startswith(prefix) and key.endswith(".lora_down.weight")):
            continue
        name = key[: -len(".lora_down.weight")]
        up = state[f"{name}.lora_up.weight"].float().flatten(1)
        flat_down = down.float().flatten(1)
        rank = flat_down.shape[0]
        alpha = float(state[f"{name}.alpha"]) if f"{name}.alpha" in state else float(rank)
        largest = max(largest, float((up @ flat_down).abs().max()) * alpha / rank)
    return largest


def read_lora_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata from a safetensors header (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            metadata = dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise LoraLoadError(f"{path}: not a readable safetensors file ({exc})") from exc
    return shapes, metadata


class SamplePipeline:
    """A diffusers StableDiffusionPipeline (or XL pipeline) kept warm across epochs."""

    def __init__(
        self,
        base: str,
        device: str = "auto",
        dtype: str = "auto",
        scheduler: str = "dpmsolver++",
        cpu_threads: int | None = None,
        family: str | None = None,
    ) -> None:
        """cpu_threads: torch intra-op threads on CPU (None: torch's default, one per core).
        On a CPU shared with other busy processes, 1 avoids OpenMP threads spinning against
        each other (measured here: generation 10-40x slower with 2 threads on 2 busy cores).
        family: "sd15" or "sdxl" (None: from the model's files, SD 1.5 when they don't say)."""
        if scheduler not in SCHEDULERS:
            raise PipelineError(f"scheduler {scheduler!r} unknown; use one of {', '.join(SCHEDULERS)}")
        if family is not None and family not in FAMILIES:
            raise PipelineError(f"model family {family!r} unknown; use one of {', '.join(FAMILIES)}")
        self.family = family or family_of_model(base) or "sd15"
        self.base = str(base)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.scheduler_name = scheduler
        self.cpu_threads = cpu_threads
        self.pipe: Any = None
        self.lora_path: Path | None = None
        self.lora_info: dict[str, Any] = {}
        self._targets: dict[str, Shape] = {}
        self._offloaded = False

    # -- loading --------------------------------------------------------------------------
    def _from_source(self, torch_dtype: Any) -> Any:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        path = Path(self.base)
        common: dict[str, Any] = {"dtype": torch_dtype}
        pipeline_class: Any = StableDiffusionXLPipeline
        if self.family == "sd15":
            pipeline_class = StableDiffusionPipeline
            common.update(safety_checker=None, requires_safety_checker=False)
        if path.suffix in (".ckpt", ".pt", ".bin", ".pth"):
            raise PipelineError(f"{path}: pickle checkpoints are refused; convert it to .safetensors")
        if path.is_file() and path.suffix == ".safetensors":
            common.pop("requires_safety_checker", None)
            return pipeline_class.from_single_file(str(path), **common)
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise PipelineError(f"{path}: not a diffusers model folder (no model_index.json)")
            held = family_of_model(path)
            if held is not None and held != self.family:
                raise PipelineError(f"{path}: a {held} model, but the run's family is {self.family}")
            return pipeline_class.from_pretrained(str(path), local_files_only=True, **common)
        if path.suffix == ".safetensors" or looks_like_path(self.base):
            raise PipelineError(f"{path}: no such model file or folder")
        return pipeline_class.from_pretrained(self.base, **common)

    def load(self) -> SamplePipeline:
        """Load the base pipeline (once; later calls do nothing)."""
        if self.pipe is not None:
            if self._offloaded:
                self.pipe.to(self.device)
                self._offloaded = False
            return self
        import torch

        quiet_libraries()
        if self.device == "cpu" and self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        try:
            pipe = self._from_source(getattr(torch, self.dtype))
        except PipelineError:
            raise
        except Exception as exc:  # diffusers/hub raise many types; report one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise PipelineError(f"cannot load base model {self.base!r}: {type(exc).__name__}: {first}") from exc
        pipe.scheduler = make_scheduler(self.scheduler_name, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        # targets are read before any adapter wraps the layers; conv=True also accepts files
        # trained with kohya's conv_dim
        self._targets = kohya_targets(pipe.unet, pipe.text_encoder, conv=True,
                                      text_encoder_2=getattr(pipe, "text_encoder_2", None))
        self.pipe = pipe.to(self.device)
        reapply, self.lora_path = self.lora_path, None
        if reapply is not None:  # reloaded after release(drop=True)
            self.apply_lora(reapply)
        return self

    def release(self, drop: bool = False) -> None:
        """Free accelerator memory between epochs (offload_between_epochs).

        On CUDA the pipeline moves to host memory; with drop=True it is discarded entirely.
        The next apply_lora()/generate() brings it back (reloading from disk after a drop
        and re-applying the current LoRA). On CPU only drop=True frees anything.
        """
        if self.pipe is None:
            return
        import torch

        if drop:
            self.pipe = None
            self._offloaded = False
        elif self.device != "cpu":
            self.pipe.to("cpu")
            self._offloaded = True
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- LoRA -----------------------------------------------------------------------------
    def _adapter_modules(self, model: Any) -> int:
        from peft.tuners.tuners_utils import BaseTunerLayer

        return sum(
            1
            for module in model.modules()
            if isinstance(module, BaseTunerLayer) and ADAPTER in getattr(module, "lora_A", {})
        )

    def adapter_count(self) -> int:
        """How many LoRA adapters the pipeline holds (1 after apply_lora, never more)."""
        if self.pipe is None:
            return 0
        names: set[str] = set()
        for adapters in self.pipe.get_list_adapters().values():
            names.update(adapters)
        return len(names)

    def _text_embedding(self, component: str) -> Any:
        import torch

        encoder = getattr(self.pipe, component)
        tokenizer = self.pipe.tokenizer_2 if component == "text_encoder_2" else self.pipe.tokenizer
        tokens = tokenizer(
            _PROBE_PROMPT, padding="max_length", truncation=True, return_tensors="pt",
            max_length=tokenizer.model_max_length,
        ).input_ids.to(self.device)
        with torch.no_grad():
            return encoder(tokens)[0].float()

    def _text_encoder_effect(self, component: str = "text_encoder") -> float:
        """Max change of the probe prompt's embedding with the LoRA on versus off."""
        from diffusers.loaders.lora_base import (
            disable_lora_for_text_encoder,
            enable_lora_for_text_encoder,
        )

        encoder = getattr(self.pipe, component)
        with_lora = self._text_embedding(component)
        disable_lora_for_text_encoder(encoder)
        try:
            without = self._text_embedding(component)
        finally:
            enable_lora_for_text_encoder(encoder)
        return float((with_lora - without).abs().max())

    def _remove_adapter(self) -> None:
        if self.pipe is not None and self.adapter_count():
            self.pipe.delete_adapters(ADAPTER)
        self.lora_path = None
        self.lora_info = {}

    def apply_lora(self, path: str | Path) -> None:
        """Replace the current LoRA with the kohya LoRA at path.

        Raises LoraLoadError (one-line reason) for files that are not safetensors, hold
        non-kohya keys, do not fit this model, or whose text-encoder part has no effect.
        A file rejected by the checks leaves the previous adapter in place.
        """
        from safetensors.torch import load_file

        path = Path(path)
        self.load()
        if not path.is_file():
            raise LoraLoadError(f"{path}: no such file")
        shapes, metadata = read_lora_shapes(path)
        lora_family = family_of_lora(metadata, shapes)
        if lora_family is not None and lora_family != self.family:
            raise LoraLoadError(f"{path.name}: an {lora_family} LoRA "
                                f"(ss_base_model_version {metadata.get('ss_base_model_version', '?')}), "
                                f"but the base model is {self.family}")
        try:
            counts = check_fits(shapes, self._targets)
        except ValueError as exc:
            raise LoraLoadError(f"{path.name}: not a usable kohya LoRA for this model: {exc}") from exc
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise LoraLoadError(f"{path.name}: cannot read tensors ({exc})") from exc
        te_deltas = {part: _largest_weight_change(state, prefixes)
                     for part, prefixes in COMPONENT_PREFIXES.items()}
        self._remove_adapter()
        te_effect = 0.0
        try:
            self.pipe.load_lora_weights(state, adapter_name=ADAPTER)
            applied = {part: self._adapter_modules(getattr(self.pipe, part))
                       for part in ("unet", *COMPONENT_PREFIXES) if hasattr(self.pipe, part)}
            if {k: v for k, v in applied.items() if v or k in counts} != counts:
                raise LoraLoadError(
                    f"{path.name}: LoRA landed on {applied} modules, file has {counts}"
                )
            for part in COMPONENT_PREFIXES:
                if not counts.get(part):
                    continue
                effect = self._text_encoder_effect(part)
                te_effect = effect if part == "text_encoder" else te_effect
                if te_deltas[part] > MIN_VISIBLE_DELTA and effect == 0.0:
                    raise LoraLoadError(
                        f"{path.name}: {part.replace('_', '-')} LoRA weights did not take effect "
                        f"(largest weight change {te_deltas[part]:.2g}, embedding unchanged)"
                    )
        except LoraLoadError:
            self._remove_adapter()
            raise
        except Exception as exc:
            self._remove_adapter()
            raise LoraLoadError(f"{path.name}: diffusers could not load it: {type(exc).__name__}: {exc}") from exc
        self.lora_path = path
        self.lora_info = {
            "path": str(path),
            "unet_modules": counts["unet"],
            "text_encoder_modules": counts["text_encoder"],
            "text_encoder_effect": te_effect,
            "text_encoder_weight_change": te_deltas["text_encoder"],
            **({"text_encoder_2_modules": counts["text_encoder_2"]} if "text_encoder_2" in counts else {}),
            "epoch": metadata.get("ss_epoch"),
        }

    def remove_lora(self) -> None:
        """Back to the bare base model."""
        self._remove_adapter()

    # -- generation -----------------------------------------------------------------------
    def generate(self, prompts: Sequence[SamplePrompt], batch_size: int) -> list[Image.Image]:
        """Render prompts (one image each, in order) in batches of equal size/steps/cfg.

        Each image has its own CPU torch.Generator seeded with its prompt's seed, so an
        image does not depend on its batch neighbours or on the device's RNG.
        """
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.load()
        groups: dict[tuple[int, int, int, float], list[int]] = {}
        for index, p in enumerate(prompts):
            groups.setdefault((int(p.width), int(p.height), int(p.steps), float(p.cfg)), []).append(index)
        images: list[Any] = [None] * len(prompts)
        for (width, height, steps, cfg), indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = [prompts[i] for i in chunk]
                result = self.pipe(
                    **self._micro_conditioning(width, height),
                    prompt=[p.text for p in batch],
                    negative_prompt=[p.negative or "" for p in batch],
                    width=width,
                    height=height,
                    num_inference_steps=steps,
                    guidance_scale=cfg,
                    generator=[torch.Generator("cpu").manual_seed(int(p.seed)) for p in batch],
                    output_type="pil",
                )
                for i, image in zip(chunk, result.images, strict=True):
                    images[i] = image
        return images

    def _micro_conditioning(self, width: int, height: int) -> dict[str, Any]:
        """SDXL's size/crop conditioning as kohya samples with: original and target size
        the image's own, no crop (SD 1.x has none)."""
        if self.family != "sdxl":
            return {}
        return {"original_size": (height, width), "target_size": (height, width),
                "crops_coords_top_left": (0, 0)}

    def memory_bytes(self) -> int:
        """Accelerator memory held by this process (0 on CPU)."""
        if not self.device.startswith("cuda"):
            return 0
        import torch

        return int(torch.cuda.memory_allocated(self.device))
