"""`make bench-gpu`: the daemon's evaluation on an SD 1.5-sized model on one CUDA GPU.

A random-weight pipeline of SD 1.5's shapes (no download) is saved as a diffusers folder and
loaded by the daemon's own `SamplePipeline`; two rank-32 kohya LoRA files stand for two
epochs. Measured: one epoch's evaluation (8 prompts x 1 seed, 512 px, 20 DPM-Solver++ steps,
CFG 7.5, fp16), the bare denoising loop, one image at a time, LoRA swaps, peak memory, a
training process sharing the GPU, optimisation variants, torch.compile with LoRA hotswap and
the offload round trip. The last line printed is one JSON object with every figure.

  .venv/bin/python -m bench.run_gpu                       # CUDA, full size, < 8 minutes
  .venv/bin/python -m bench.run_gpu --smoke --device cpu  # tiny shapes, 64 px, 2 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.gpu import measure, report
from bench.gpu.sharing import REPO, TrainerProcess, WorkerFailed, child_env, measure_sharing
from bench.gpu.slowdown import summarize

PROMPTS_FILE = REPO / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "prompts.txt"
OUT_JSON = REPO / "bench" / "out" / "bench-gpu.json"
# vae_tiling is left out by default: at 512 px the image is a single tile (diffusers tiles
# above the VAE's sample_size of 512), so it cannot change anything; --variants adds it.
VARIANT_ORDER = ("sdpa_off", "channels_last", "fused_lora", "vae_slicing", "cudnn_benchmark")


class Budget:
    """Wall-clock budget for the whole run; optional phases are skipped when it runs low."""

    def __init__(self, total_s: float) -> None:
        self.total_s, self.start = total_s, time.monotonic()

    def left(self) -> float:
        return self.total_s - (time.monotonic() - self.start)

    def allows(self, need_s: float) -> bool:
        return self.left() > need_s


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run_gpu", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 64 px, 2 steps (CPU check)")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu needs --smoke)")
    p.add_argument("--prompts-file", type=Path, default=PROMPTS_FILE)
    p.add_argument("--prompts", type=int, default=8, help="how many prompts (1 seed each)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (3; smoke 1)")
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock budget (400; smoke 150)")
    p.add_argument("--model-dir", type=Path, default=None, help="keep/reuse the built model here")
    p.add_argument("--variants", default=",".join(VARIANT_ORDER), help="comma list, '' for none")
    p.add_argument("--compile-modes", default=None,
                   help="torch.compile modes to try, comma list (default: 'default,reduce-overhead', "
                        "reduce-overhead = CUDA graphs; smoke: none); '' skips compile")
    p.add_argument("--compile-backend", default=None, help="inductor (smoke: eager)")
    p.add_argument("--cpu-threads", type=int, default=None,
                   help="torch CPU threads per process (smoke on CPU: 1, as the processes share cores)")
    p.add_argument("--no-trainer", action="store_true", help="skip the shared-GPU training test")
    p.add_argument("--no-offload", action="store_true")
    p.add_argument("--json-out", type=Path, default=OUT_JSON)
    return p


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def load_prompts(path: Path, n: int, smoke: bool) -> list[Any]:
    from watcher.config import PromptDefaults, parse_prompt_file

    prompts = parse_prompt_file(path, PromptDefaults())[:n]
    if len(prompts) < n:
        raise ValueError(f"{path}: has {len(prompts)} prompts, {n} needed")
    if smoke:
        prompts = [dataclasses.replace(p, width=64, height=64, steps=2) for p in prompts]
    return prompts


def run_compile_child(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    spec_file = Path(spec["out_file"]).with_suffix(".spec.json")
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = child_env()
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.gpu.compile_phase", str(spec_file)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        failure = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
        if failure:  # the whole story for whoever reads the run's stderr
            print("\n".join(proc.stderr.strip().splitlines()[-40:]), file=sys.stderr)
    except subprocess.TimeoutExpired:
        failure = f"stopped at the {timeout_s:.0f} s time limit"
    out = Path(spec["out_file"])
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if failure:
        result["error"] = failure[:300]
    return result


@dataclasses.dataclass
class Run:
    """One benchmark run: its settings, the figures gathered so far, and what it holds."""

    args: argparse.Namespace
    device: str
    threads: int | None
    budget: Budget
    work: Path
    fig: dict[str, Any]
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)
    prompts: list[Any] = dataclasses.field(default_factory=list)
    loras: list[Path] = dataclasses.field(default_factory=list)
    model_dir: Path | None = None
    sp: Any = None
    worker: TrainerProcess | None = None

    @property
    def smoke(self) -> bool:
        return bool(self.args.smoke)

    @property
    def repeats(self) -> int:
        return int(self.args.repeats or (1 if self.smoke else 3))

    # -- phases, in order --------------------------------------------------------------------
    def setup(self) -> None:
        """Start the trainer (idle), build the model and the LoRA files, load the pipeline."""
        from bench.gpu.sd15 import SHAPES, build_model, parameter_counts, write_loras
        from watcher.pipeline import SamplePipeline

        shapes = SHAPES["smoke" if self.smoke else "sd15"]
        self.fig["shapes"] = shapes.name
        if not self.args.no_trainer:  # starts now so its imports overlap our set-up
            self.worker = TrainerProcess(
                self.work / "trainer", shapes.name, self.device, latent=self.prompts[0].width // 8,
                max_s=self.budget.left() + 60,
                extra_args=["--cpu-threads", str(self.threads)] if self.threads else [])
        model_dir = self.model_dir = self.args.model_dir or self.work / "model"
        self.fig["build_s"], _ = measure.timed(
            self.device, lambda: build_model(model_dir, shapes, device=self.device))
        self.fig["parameters"] = parameter_counts(model_dir)
        self.loras = write_loras(model_dir, self.work / "loras")
        p0 = self.prompts[0]
        self.fig.update({
            "lora": {"rank": 32, "alpha": 16, "file_mib": round(self.loras[0].stat().st_size / 2**20, 2)},
            "images": len(self.prompts), "size_px": p0.width, "steps": p0.steps, "cfg": p0.cfg,
            "batch_size": self.args.batch_size, "scheduler": "dpmsolver++"})
        self.sp = SamplePipeline(str(model_dir), device=self.device, dtype="auto", scheduler="dpmsolver++")
        self.fig["dtype"] = self.sp.dtype
        self.fig["load_s"], _ = measure.timed(self.device, self.sp.load)
        if self.worker is not None:  # its model build must not overlap our timings
            try:
                self.worker.wait_event("initialized", timeout_s=max(60.0, self.budget.left() / 3))
            except WorkerFailed as exc:
                self.errors["trainer"] = _error(exc)
                self.stop_worker()

    def evaluate(self) -> dict[str, Any]:
        """One epoch's evaluation with the other epoch's LoRA file, so every swap is real."""
        current = self.sp.lora_path
        lora = self.loras[1] if current == self.loras[0] else self.loras[0]
        return measure.evaluate_epoch(self.sp, lora, self.prompts, self.args.batch_size)

    def solo(self) -> None:
        """The daemon with the GPU to itself: one epoch's evaluation (median of repeats)."""
        sp, fig, prompts, batch, device = self.sp, self.fig, self.prompts, self.args.batch_size, self.device
        fig["lora_first_apply_s"], _ = measure.timed(device, lambda: sp.apply_lora(self.loras[0]))
        sp.generate(prompts, batch)  # warm-up: kernels, allocator
        measure.reset_peak(device)
        evals = [self.evaluate() for _ in range(self.repeats)]
        fig["peak_vram_gib"] = measure.peak_gib(device)
        for key, name in (("total_s", "eval_s_per_epoch"), ("generate_s", "generate_s"),
                          ("score_s", "score_s"), ("swap_s", "lora_swap_s")):
            fig[name] = measure.median_of(evals, key)
        fig["images_per_s"] = len(prompts) / fig["generate_s"]
        fig["images_ok"] = measure.images_finite(evals[-1]["images"])

    def bare_loop(self) -> None:
        """The same denoising loop with nothing around it."""
        fig = self.fig
        fig["unet_only_s"] = statistics.median(measure.unet_only(self.sp, self.prompts, self.repeats))
        fig["overhead_ratio"] = fig["generate_s"] / fig["unet_only_s"]
        fig["eval_overhead_ratio"] = fig["eval_s_per_epoch"] / fig["unet_only_s"]

    def sequential(self) -> None:
        """One image at a time, and what a kohya-style pause for the same samples costs."""
        sp, fig, prompts = self.sp, self.fig, self.prompts
        fig["sequential_s"] = statistics.median(
            measure.timed(self.device, lambda: sp.generate(prompts, 1))[0]
            for _ in range(max(1, self.repeats - 1)))
        fig["batched_vs_sequential"] = fig["sequential_s"] / fig["generate_s"]
        kohya = measure.kohya_pause_extras(sp)
        fig["kohya_pause_extras_s"] = kohya
        fig["pause_cost_s"] = fig["sequential_s"] + kohya["total_s"]
        fig["pause_cost_if_batched_s"] = fig["generate_s"] + kohya["total_s"]

    def trainer(self) -> None:
        """A training process on the same GPU: its step time alone and while we evaluate."""
        worker = self.worker
        if worker is None:
            if self.args.no_trainer:
                self.skipped.append("trainer (--no-trainer)")
            return
        if not self.budget.allows(3 * self.fig["eval_s_per_epoch"] + 90):
            self.skipped.append("trainer (time budget)")
            self.stop_worker()
            return
        try:
            shared = measure_sharing(worker, self.evaluate,
                                     alone_s=1.5 if self.smoke else 8.0, repeats=1 if self.smoke else 2,
                                     ready_timeout_s=max(30.0, self.budget.left() / 4))
            self.fig.update(summarize(shared["steps"], shared["alone"], shared["shared"],
                                      self.fig.get("pause_cost_s")))
            self.fig["eval_s_shared"] = statistics.median(e["total_s"] for e in shared["evals"])
            self.fig["trainer_steps_recorded"] = len(shared["steps"])
            self.fig["trainer_peak_vram_gib"] = shared["worker_peak_vram_gib"]
        finally:
            self.stop_worker()

    def variants(self) -> None:
        """Optimisation variants on the warm pipeline, each restored after use."""
        rows: dict[str, dict[str, Any]] = {}
        names = [v for v in self.args.variants.split(",") if v and v != "baseline"]
        for name in ["baseline", *names] if names else []:
            if self.device == "cpu" and name in measure.NOT_ON_CPU:
                rows[name] = {"skipped": "CUDA only"}
            elif not self.budget.allows((2 + self.repeats) * self.fig["generate_s"] + 90):
                rows[name] = {"skipped": "time budget"}
            else:
                try:
                    rows[name] = measure.measure_variant(self.sp, name, self.prompts, self.args.batch_size,
                                                         max(1, self.repeats - 1))
                except Exception as exc:  # one variant failing must not cost the others
                    rows[name] = {"error": _error(exc)}
        if not names:
            self.skipped.append("optimisation variants (--variants '')")
            return
        base = rows.pop("baseline", {})
        if "generate_s" not in base:  # without a baseline beside them the variants say nothing
            self.fig["optimisations"] = {"baseline": base, **rows}
            return
        self.fig["optimisations"] = {"baseline": base, **report.variant_verdicts(
            base["generate_s"], base["peak_vram_gib"], rows)}

    def offload(self) -> None:
        """offload_between_epochs: memory freed and the cost of bringing the pipeline back."""
        if self.args.no_offload:
            self.skipped.append("offload (--no-offload)")
        elif not self.budget.allows(self.fig["load_s"] * 2 + self.fig["generate_s"] + 60):
            self.fig["offload"] = {"skipped": "time budget"}
        else:
            try:
                self.fig["offload"] = measure.offload_round_trip(self.sp, self.prompts, self.args.batch_size)
            except Exception as exc:  # reported, the remaining phases still run
                self.fig["offload"] = {"error": _error(exc)}
        self.sp.release(drop=True)  # the compile child needs the memory, not this pipeline

    def compile(self, modes: list[str], backend: str) -> None:
        """torch.compile + LoRA hotswap, one child process per mode, within the budget."""
        self.fig["compile"] = {}
        if not modes:
            self.skipped.append("compile (not asked for; --compile-modes default)")
        for mode in modes:
            if not self.budget.allows(30.0 if self.smoke else 150.0):
                self.fig["compile"][mode] = {"skipped": "time budget"}
                continue
            spec = {"model_dir": str(self.model_dir), "loras": [str(p) for p in self.loras],
                    "device": self.device, "dtype": "auto", "batch_size": self.args.batch_size,
                    "rank": 32, "mode": mode, "backend": backend, "cpu_threads": self.threads,
                    "prompts": [dataclasses.asdict(p) for p in self.prompts],
                    "repeats": max(1, self.repeats - 1), "out_file": str(self.work / f"compile-{mode}.json")}
            limit = self.budget.left() - 10
            spec.update(time_limit_s=limit, control_needs_s=5.0 if self.smoke else 60.0)
            self.fig["compile"][mode] = run_compile_child(spec, timeout_s=limit)

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("bench-gpu: no CUDA device here; for a CPU check run "
              "`python -m bench.run_gpu --smoke --device cpu`", file=sys.stderr)
        return 2
    if device == "cpu" and not args.smoke:
        print("bench-gpu: the SD 1.5-sized run needs CUDA; use --smoke with --device cpu", file=sys.stderr)
        return 2
    unknown = [v for v in args.variants.split(",") if v and v not in measure.VARIANTS]
    if unknown:
        print(f"bench-gpu: unknown variant {unknown[0]!r}; known: {', '.join(measure.VARIANTS)}",
              file=sys.stderr)
        return 2
    from watcher.config import ConfigError

    try:
        prompts = load_prompts(args.prompts_file, args.prompts, args.smoke)
    except (ValueError, ConfigError) as exc:
        print(f"bench-gpu: {exc}", file=sys.stderr)
        return 2
    threads = args.cpu_threads or (1 if device == "cpu" else None)
    if threads:  # on a CPU the main process and the trainer share the cores
        torch.set_num_threads(threads)
    # the smoke run leaves compile out by default: tracing alone takes ~10 s on a busy CPU
    modes = args.compile_modes if args.compile_modes is not None else (
        "" if args.smoke else "default,reduce-overhead")
    backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    fig: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "smoke": bool(args.smoke)}
    budget = Budget(args.budget_s or (150.0 if args.smoke else 400.0))
    run = Run(args, device, threads, budget, Path(tempfile.mkdtemp(prefix="bench-gpu-")), fig,
              prompts=prompts)
    phases: list[tuple[str, Callable[[], None]]] = [
        ("setup", run.setup), ("solo", run.solo), ("bare_loop", run.bare_loop),
        ("sequential", run.sequential), ("trainer", run.trainer), ("variants", run.variants),
        ("offload", run.offload),
        ("compile", lambda: run.compile([m for m in modes.split(",") if m], backend))]
    try:
        for name, phase in phases:
            if "setup" in run.errors or "solo" in run.errors:
                run.skipped.append(f"{name} (nothing to compare with: an earlier phase failed)")
                continue
            try:
                phase()
            except Exception as exc:  # reported in the figures; later phases still run
                run.errors[name] = _error(exc)
                traceback.print_exc(file=sys.stderr)
    finally:
        run.stop_worker()
        shutil.rmtree(run.work, ignore_errors=True)
    fig["errors"], fig["skipped"] = run.errors, run.skipped
    fig["wall_s"] = budget.total_s - budget.left()
    print(report.table(fig))
    line = report.json_line(fig)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(line + "\n", encoding="utf-8")
    print(line)
    if run.errors:
        print(f"bench-gpu: {len(run.errors)} phase(s) failed: {', '.join(run.errors)}", file=sys.stderr)
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
