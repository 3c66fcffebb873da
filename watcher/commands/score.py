"""`epochwatch score`: score images against a prompt (see ARCHITECTURE.md for the contract).

Every image is scored on its own: a bad one gets a one-line error (in --json mode an
object with `image` and `error`), the others are still scored, and the exit status is 1
when any failed. Never imports torch, unless the config (-c) names a learned judge
([evaluation] clip_model): then its CLIPScore is a column too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.commands._images import ImageLoadError, load_rgb
from watcher.errors import CommandError, Interrupted
from watcher.progress import Batch

MAX_CELLS = 512


@dataclass(frozen=True)
class Job:
    image: str            # as given (positional path, or the manifest's "image")
    prompt: str
    path: Path | None     # None when the manifest line itself is bad
    error: str | None = None


def check_cells(cells: int) -> int:
    if not 1 <= cells <= MAX_CELLS:
        raise CommandError(f"--cells must be between 1 and {MAX_CELLS}, got {cells}")
    return cells


def _manifest_path(raw: str, manifest: Path) -> Path:
    """Relative paths are taken from the manifest's folder (never the working folder: the
    same manifest means the same images wherever it is run from)."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def read_manifest(manifest: str, default_prompt: str) -> list[Job]:
    file = Path(manifest)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CommandError(f"manifest not found: {manifest}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read manifest {manifest}: {exc}") from None
    jobs: list[Job] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{manifest}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            jobs.append(Job(where, "", None, f"manifest line is not JSON: {exc.msg}"))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not entry["image"]:
            jobs.append(Job(where, "", None, 'manifest line needs an "image" path string'))
            continue
        prompt = entry.get("prompt", default_prompt)
        if not isinstance(prompt, str):
            jobs.append(Job(entry["image"], "", None, '"prompt" must be a string'))
            continue
        jobs.append(Job(entry["image"], prompt, _manifest_path(entry["image"], file)))
    return jobs


@dataclass(frozen=True)
class Settings:
    """How images are judged: the config's [evaluation] section, overridden by flags."""
    cells: int = 24
    colour_match: str = "category"
    exact_delta_e: float | None = None   # None: the evaluators' default
    clip_model: str | None = None        # the config's learned judge (torch loaded only then)

    def scoring_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"colour_match": self.colour_match}
        if self.exact_delta_e is not None:
            kwargs["exact_threshold"] = self.exact_delta_e
        return kwargs


def resolve_settings(args: argparse.Namespace) -> Settings:
    """`-c CONFIG` gives the run's [evaluation] settings; --cells, --colour-match and
    --exact-delta-e override them; a bad value is refused in one line naming the flag."""
    given = {key: value for key, value in (("colour_match", args.colour_match),
                                           ("exact_delta_e", args.exact_delta_e)) if value is not None}
    cells: int | None = args.cells
    if args.config is None and "exact_delta_e" not in given:
        return Settings(cells=check_cells(24 if cells is None else cells), **given)
    from pydantic import ValidationError

    from watcher.commands._common import load
    from watcher.config import EvaluationConfig

    base = load(args.config).evaluation if args.config else EvaluationConfig()
    try:  # the config's own rules (one source for the ranges)
        evaluation = EvaluationConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-")
        raise CommandError(f"{flag}: {error['msg']}") from None
    return Settings(cells=check_cells(evaluation.cells if cells is None else cells),
                    colour_match=evaluation.colour_match, exact_delta_e=evaluation.exact_delta_e,
                    clip_model=None if evaluation.clip_model is None else str(evaluation.clip_model))


def score_job(job: Job, settings: Settings) -> dict[str, Any]:
    """{"image", ...score} or {"image", "error"}."""
    if job.error is not None or job.path is None:
        return {"image": job.image, "error": job.error or "no image"}
    try:
        rgb = load_rgb(job.path, cells=settings.cells)
    except ImageLoadError as exc:
        return {"image": job.image, "error": str(exc)}
    from evaluators import score_image

    try:
        result = score_image(rgb, job.prompt, cells=settings.cells, **settings.scoring_kwargs())
    except (ValueError, MemoryError) as exc:
        return {"image": job.image, "error": f"could not score: {exc}"}
    learned: dict[str, float] = {}
    if settings.clip_model is not None:
        from watcher.clipjudge import judge_for

        try:
            learned["clip_score"] = judge_for(settings.clip_model).scores([rgb], [job.prompt])[0]
        except ValueError as exc:  # a folder that is not a CLIP model: once per image, in a line
            raise CommandError(str(exc)) from None
    return {"image": job.image, **result.to_dict(), **learned}


def prompt_warning(prompt: str) -> str | None:
    """Why a prompt cannot be judged for colour, if it cannot (issue 13: never in silence)."""
    from evaluators.prompt import malformed_hex, parse_prompt

    bad = malformed_hex(prompt)
    if bad:
        return (f"prompt has a malformed colour code {bad[0].token!r} at character {bad[0].position}; "
                f"it is ignored: {_short(prompt)}")
    if not parse_prompt(prompt).colors:
        return ("prompt names no colour it can judge (no hex code, no colour word for a background, "
                f"hair, skin, eyes, lips, clothing or accessory); background_match, color_accuracy and "
                f"prompt_score stay null: {_short(prompt)}")
    return None


def _short(prompt: str, limit: int = 80) -> str:
    text = " ".join(prompt.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = ("image", "background", "dE", "match", "colour", "style", "colours",
                 "visual", "style/10", "prompt/10", "issues")


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        rows.append((
            r["image"], r["background_hex"], _fmt(r["background_delta_e"]), _fmt(r["background_match"]),
            _fmt(r["color_accuracy"]), _fmt(r["style_quality"]), _fmt(r["unique_colors"]),
            _fmt(r["visual_score"]), _fmt(r["style_score"]), _fmt(r["prompt_score"]),
            ", ".join(r["issues"]) or "-",
        ))
    return rows


def print_table(results: list[dict[str, Any]]) -> None:
    rows = [TABLE_COLUMNS, *table_rows(results)]
    if any("clip_score" in r for r in results):  # the learned judge's column, only when asked
        rows = [(*row[:-1], clip, row[-1]) for row, clip in
                zip(rows, ["clip", *(_fmt(r.get("clip_score")) for r in results)], strict=True)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(len(widths))] + [row[-1]]
        print("  ".join(cells).rstrip())


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    jobs = [Job(image, args.prompt, Path(image)) for image in args.images]
    if args.manifest:
        jobs.extend(read_manifest(args.manifest, args.prompt))
    if not jobs:
        raise CommandError("nothing to score: give IMAGE paths or --manifest FILE")
    scored: list[dict[str, Any]] = []
    failures = 0
    warned: set[str] = set()
    try:
        with Batch(len(jobs), "images", "scoring", json_mode=args.json) as batch:
            for job in jobs:
                if job.error is None and job.prompt not in warned:
                    warned.add(job.prompt)        # once per prompt, however many images use it
                    warning = prompt_warning(job.prompt)
                    if warning:
                        print(f"epochwatch score: warning: {warning}", file=sys.stderr)
                result = score_job(job, settings)
                if "error" in result:
                    failures += 1
                    if not args.json:
                        print(f"epochwatch score: {result['image']}: {result['error']}", file=sys.stderr)
                else:
                    scored.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
                batch.advance()
    except Interrupted:
        if not args.json and scored:
            print_table(scored)  # what was scored before Ctrl-C is not thrown away
        raise
    if not args.json and scored:
        print_table(scored)
    if failures:
        print(f"epochwatch score: {failures} of {len(jobs)} images could not be scored", file=sys.stderr)
        return 1
    return 0
