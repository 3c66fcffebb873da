"""The benchmark's summary: headline figures from the raw timings, a table, the JSON line."""

from __future__ import annotations

import json
from typing import Any

# target figures from the issue: name -> (comparison, threshold)
TARGETS = {"overhead_ratio": ("<=", 1.3), "batched_vs_sequential": (">=", 2.0)}
PAYS_SPEEDUP = 1.05  # a variant "pays" when generation gets at least 5 % faster
SAVES_MEMORY = 0.9  # ... or peak memory drops by 10 % or more


def variant_verdicts(base_generate_s: float, base_peak: float | None,
                     variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, row in variants.items():
        if "error" in row or "skipped" in row:
            out[name] = row
            continue
        speedup = base_generate_s / row["generate_s"]
        verdict = "pays (faster)" if speedup >= PAYS_SPEEDUP else "no gain"
        peak = row.get("peak_vram_gib")
        if base_peak and peak is not None and peak <= base_peak * SAVES_MEMORY:
            verdict = "pays (memory)" if speedup >= 1 / PAYS_SPEEDUP else "saves memory, slower"
        elif speedup <= 1 / PAYS_SPEEDUP:
            verdict = "slower"
        out[name] = {**row, "speedup": round(speedup, 3), "verdict": verdict}
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def table(figures: dict[str, Any]) -> str:
    """Human-readable rows: headline figures, then optimisations, compile, offload."""
    rows: list[tuple[str, str, str]] = []
    notes = {
        "eval_s_per_epoch": "swap + generate + score, GPU to itself",
        "images_per_s": "batched generation",
        "unet_only_s": "bare denoising loop, same batch",
        "overhead_ratio": "generate / unet_only (target <= 1.3)",
        "batched_vs_sequential": "one-at-a-time / batched (target >= 2)",
        "lora_swap_s": "delete + load + checks (median)",
        "peak_vram_gib": "during batched generation",
        "trainer_slowdown": "trainer step shared / alone",
        "training_time_lost_per_epoch_s": "training delayed by one evaluation",
        "pause_cost_s": "kohya-style pause for the same samples",
    }
    for key, note in notes.items():
        rows.append((key, _fmt(figures.get(key)), note))
    for name, row in (figures.get("optimisations") or {}).items():
        if name == "baseline" and "generate_s" in row:
            rows.append(("opt: baseline", f"{row['generate_s']:.4g} s",
                         f"measured beside the variants, peak {_fmt(row.get('peak_vram_gib'))} GiB"))
            continue
        detail = row.get("error") or row.get("skipped") or (
            f"{_fmt(row.get('generate_s'))} s, x{_fmt(row.get('speedup'))}, "
            f"peak {_fmt(row.get('peak_vram_gib'))} GiB")
        rows.append((f"opt: {name}", row.get("verdict", "-"), detail))
    for mode, row in (figures.get("compile") or {}).items():
        if "compiled_generate_s" in row:
            detail = (f"{row['compiled_generate_s']:.4g} s vs {row['eager_generate_s']:.4g} s eager, "
                      f"first {row['first_generate_with_compile_s']:.4g} s, hotswap "
                      f"{_fmt(row.get('hotswap_s'))} s, recompiled: {row.get('recompiled_after_hotswap')}")
            if "recompiled_after_ordinary_swap" in row:
                detail += (f"; ordinary swap recompiled: {row['recompiled_after_ordinary_swap']} "
                           f"({row['generate_after_ordinary_swap_s']:.4g} s)")
            value = f"x{row['speedup_vs_eager']:.3g}"
        else:
            detail, value = row.get("error") or row.get("skipped") or f"stopped at {row.get('stage')}", "-"
        rows.append((f"compile: {mode}", value, detail))
    offload = figures.get("offload") or {}
    if "reload_from_host_s" in offload:
        rows.append(("offload_between_epochs", f"{offload['release_to_host_s'] + offload['reload_from_host_s']:.4g} s",
                     f"frees {offload['vram_held_gib'] - offload['vram_after_release_gib']:.3g} GiB; "
                     f"reload from disk {offload['reload_from_disk_s']:.4g} s"))
    elif offload:
        rows.append(("offload_between_epochs", "-", offload.get("error") or offload.get("skipped", "")))
    for phase, message in (figures.get("errors") or {}).items():
        rows.append((f"error: {phase}", "-", message))
    for what in figures.get("skipped") or []:
        rows.append(("skipped", "-", what))
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    head = f"epochwatch bench-gpu on {figures.get('device')} (torch {figures.get('torch')}, {figures.get('shapes')} shapes)"
    return "\n".join([head] + [f"  {a:<{width}}  {b:>{vwidth}}  {c}" for a, b, c in rows])


def json_line(figures: dict[str, Any]) -> str:
    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}")  # significant digits: small timings keep their precision
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(figures), sort_keys=False)
