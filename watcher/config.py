"""The watcher config: one TOML file per run, validated with pydantic (unknown keys refused).

Errors are one line naming the file, the line and the dotted key
(`config.toml:12: model.steps: Input should be a valid integer`). tomllib reports no
positions for valid TOML, so `KeyLines` re-scans the text to find where each key was set.
The kohya `--config_file` reader lives in `watcher.kohya`, the line finder in
`watcher.tomllines`, the kohya prompt-file format in `watcher.prompts`,
`ConfigError` in `watcher.errors` (re-exported here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evaluators.aggregate import NEEDS_CLIP, judgeable_metrics
from evaluators.prompt import malformed_hex, parse_prompt
from watcher.errors import ConfigError
from watcher.family import NATIVE_SIZE, family_of_command, family_of_model
from watcher.kohya import kohya_network_arg, load_kohya, load_kohya_config  # noqa: F401 - API

# Re-exported: the prompt types and ConfigError are part of this module's API.
from watcher.prompts import PromptDefaults, SamplePrompt, parse_prompt_file  # noqa: F401
from watcher.rules import (
    METRICS,
    PLAN_RULES,
    TRAINING_METRICS,
    Action,
    Comparison,
    Mode,
    OnMissing,
    Rule,
    range_problem,
)
from watcher.tomllines import KeyLines, Loc, dotted_key, read_toml

# sd-scripts' defaults for tracked options a kohya config may leave out (optimizer_type:
# kohya_optimizer).
KOHYA_DEFAULTS: dict[str, Any] = {"lr_scheduler": "constant"}


def kohya_optimizer(kohya: dict[str, Any]) -> str:
    """The optimizer kohya trains with: optimizer_type, else what its older flags pick."""
    if kohya.get("optimizer_type"):
        return str(kohya["optimizer_type"])
    if kohya.get("use_8bit_adam"):
        return "AdamW8bit"
    return "Lion" if kohya.get("use_lion_optimizer") else "AdamW"


# kohya's sample_sampler names -> the schedulers the daemon's pipeline has.
KOHYA_SAMPLERS = {"ddim": "ddim", "pndm": "pndm", "euler_a": "euler_a", "k_euler_a": "euler_a",
                  "dpmsolver++": "dpmsolver++"}


# ----------------------------------------------------------------------------- schema

PathT = Annotated[Path, Strict(False)]


AGGREGATE_METRICS = METRICS  # the names rules may use: watcher.rules, from aggregate_epoch
if TYPE_CHECKING:  # Literal of a runtime tuple: pydantic validates it, mypy sees plain str
    Metric: TypeAlias = str
else:
    Metric = Literal[METRICS]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _empty_path_is_unset(value: Any) -> Any:
    return None if value == "" else value  # `prompts_file = ""` is "none", not the config folder


class DatasetInfo(_Model):
    num_images: int | None = Field(None, ge=0)
    caption_version: str | None = None


class RunConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    kohya_config: PathT | None = None
    output_dir: PathT | None = None
    output_name: str | None = Field(None, pattern=r"^[^/\\\x00-\x1f]+$")
    max_train_epochs: int | None = Field(None, ge=1)
    save_every_n_epochs: int | None = Field(None, ge=1)
    state_dir: PathT = Path("state")
    expected_epoch_minutes: float = Field(11.0, gt=0)
    overdue_factor: float = Field(2.0, ge=1)
    dataset: DatasetInfo = DatasetInfo()
    params: dict[str, Any] = {}
    plan: PathT | None = None  # the run's plan.toml (watcher.plan); none: judged by its rules

    _unset = field_validator("kohya_config", "output_dir", "plan", mode="before")(_empty_path_is_unset)


class ModelConfig(_Model):
    base: str | None = None
    # "sd15" or "sdxl"; "auto": from the trainer script (sdxl_train_network.py) or the model's
    # files, SD 1.5 when neither says. Loading resolves it; width/height default to its size.
    family: Literal["auto", "sd15", "sdxl"] = "auto"
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    scheduler: Literal["dpmsolver++", "euler_a", "ddim", "pndm"] = "dpmsolver++"
    steps: int = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0, le=50)
    width: int = Field(512, ge=64, le=4096, multiple_of=8)
    height: int = Field(512, ge=64, le=4096, multiple_of=8)
    batch_size: int = Field(8, ge=1, le=256)
    offload_between_epochs: bool = False
    # When the pipeline does not fit in the free GPU memory (watcher/gpumemory.py): refuse to
    # start, keep it off the GPU until an evaluation fits, or judge the trainer's samples.
    on_gpu_memory_short: Literal["refuse", "offload", "trainer_samples"] = "refuse"


class InlinePrompt(_Model):
    text: str = Field(min_length=1)
    negative: str | None = None
    seed: int | None = None
    width: int | None = Field(None, ge=64, le=4096, multiple_of=8)
    height: int | None = Field(None, ge=64, le=4096, multiple_of=8)
    steps: int | None = Field(None, ge=1, le=1000)
    cfg: float | None = Field(None, ge=0, le=50)


class SamplingConfig(_Model):
    # Who makes the samples: "render" (the daemon's own pipeline, LoRA swapped in) or
    # "trainer" (kohya's own PNGs in {output_dir}/sample/, scored without loading a model).
    source: Literal["render", "trainer"] = "render"
    set_timeout_s: float = Field(600.0, gt=0)  # trainer: an epoch's set is partial after this
    prompts_file: PathT | None = None
    prompts: list[InlinePrompt] = []
    seeds: list[int] = Field([1234], min_length=1)
    negative_prompt: str = ""
    review_epochs: list[Annotated[int, Field(ge=1)]] = [1, 3, 5, 7, 10]
    review_prompts_file: PathT | None = None

    _unset = field_validator("prompts_file", "review_prompts_file", mode="before")(
        _empty_path_is_unset
    )


class FamilyEvaluation(_Model):
    """`[evaluation.sdxl]` / `[evaluation.sd15]`: what differs when judging that family."""

    cells: int | None = Field(None, ge=2, le=512)


class EvaluationConfig(_Model):
    cells: int = Field(24, ge=2, le=512)
    sd15: FamilyEvaluation = FamilyEvaluation()
    sdxl: FamilyEvaluation = FamilyEvaluation()
    # How a prompt's colours are judged: by the category a person would name ("category"),
    # or by CIEDE2000 distance to the hex code, at most exact_delta_e ("exact").
    colour_match: Literal["category", "exact"] = "category"
    exact_delta_e: float = Field(10.0, gt=0, le=100)
    # An optional learned judge: a local CLIP model folder (never a hub id), giving the
    # advisory clip_score (watcher.clipjudge).
    clip_model: PathT | None = None

    _unset = field_validator("clip_model", mode="before")(_empty_path_is_unset)

    def scoring_kwargs(self) -> dict[str, Any]:
        """What the evaluators' scoring functions take from this section."""
        return {"colour_match": self.colour_match, "exact_threshold": self.exact_delta_e}


class ResultsConfig(_Model):
    repo: PathT = Path("results")
    dir: str = Field("runs", min_length=1)
    remote: str = ""

    @field_validator("dir")
    @classmethod
    def _inside_repo(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative folder inside the repository")
        return value


class TrainerConfig(_Model):
    command: list[str] = []
    cwd: PathT = Path(".")
    log_file: PathT = Path("logs/trainer.log")
    stop_grace_s: float = Field(30.0, ge=0)


class DaemonConfig(_Model):
    rescan_interval_s: float = Field(2.0, gt=0)
    settle_interval_s: float = Field(0.25, gt=0)
    polling_observer: bool = False


class SupabaseConfig(_Model):
    enabled: bool = True
    timeout_s: float = Field(10.0, gt=0)
    upload_contact_sheet: bool = False
    bucket: str = "epochwatch"
    retry_max_s: float = Field(300.0, gt=0)  # outbox backoff cap after an outage


class AlertsConfig(_Model):
    min_interval_s: float = Field(1.0, ge=0)
    dedupe_window_s: float = Field(600.0, ge=0)


class TrainingConfig(_Model):
    """The trainer's own figures (watcher.training): where kohya logs them, and the health
    limits. logging_dir: default the kohya config's (relative to the trainer's cwd)."""

    logging_dir: PathT | None = None
    loss_rise_factor: float = Field(3.0, gt=1)
    stall_minutes: float = Field(10.0, gt=0)

    _unset = field_validator("logging_dir", mode="before")(_empty_path_is_unset)


class Criterion(_Model):
    """A `[[criteria]]` entry as written; `Rule` (watcher.rules) is the one validation of
    what the fields mean together, run here so its errors carry the TOML line."""

    name: str = Field(min_length=1)
    metric: Metric
    comparison: Comparison = ">="
    threshold: float
    epoch: int | None = Field(None, ge=1)
    mode: Mode = "by"
    action: Action = "alert"
    on_missing: OnMissing = "alert"
    learned_stop: bool = False  # watcher.rules.LEARNED_METRICS: opt in to a stop on clip_score

    @field_validator("threshold")
    @classmethod
    def _in_metric_range(cls, value: float, info: ValidationInfo) -> float:
        # here, not only in Rule, so that the error names criteria[i].threshold and its line
        if (problem := range_problem(str(info.data.get("metric", "")), value)) is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _valid_rule(self) -> Criterion:
        try:
            self.rule()
        except ValueError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None  # the key names the rule
        return self

    def rule(self) -> Rule:
        return Rule(self.name, self.metric, self.comparison, self.threshold, self.epoch,
                    self.mode, self.action, self.on_missing, self.learned_stop)


def default_criteria() -> list[Criterion]:
    """The plan's rules (watcher.rules.PLAN_RULES) as config entries."""
    return [Criterion(name=r.name, metric=r.metric, comparison=r.comparison,
                      threshold=r.threshold, epoch=r.epoch, mode=r.mode, action=r.action,
                      on_missing=r.on_missing) for r in PLAN_RULES]


T = TypeVar("T")


def _loaded(value: T | None) -> T:
    assert value is not None  # load_config guarantees it
    return value


class _ConfigFile(_Model):
    run: RunConfig
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    results: ResultsConfig = ResultsConfig()
    trainer: TrainerConfig = TrainerConfig()
    daemon: DaemonConfig = DaemonConfig()
    supabase: SupabaseConfig = SupabaseConfig()
    alerts: AlertsConfig = AlertsConfig()
    training: TrainingConfig = TrainingConfig()
    criteria: list[Criterion] | None = None


class WatchConfig(_ConfigFile):
    """A loaded config: paths absolute, kohya values merged into `run` and `model`."""

    path: PathT
    kohya: dict[str, Any] = {}
    criteria: list[Criterion] = []
    warnings: list[str] = []  # what the kohya import found worth saying (logged at start)
    plan: Any = None  # the loaded watcher.plan.Plan, when run.plan names one

    @property
    def state_db(self) -> Path:
        return self.run.state_dir / "state.db"

    # Set by load_config (from the file or the kohya config): typed as always present.
    @property
    def output_dir(self) -> Path:
        return _loaded(self.run.output_dir)

    @property
    def output_name(self) -> str:
        return _loaded(self.run.output_name)

    @property
    def max_train_epochs(self) -> int:
        return _loaded(self.run.max_train_epochs)

    @property
    def save_every_n_epochs(self) -> int:
        return self.run.save_every_n_epochs or 1

    @property
    def base_model(self) -> str:
        return _loaded(self.model.base)

    @property
    def results_repo(self) -> Path:
        return self.results.repo

    @property
    def run_results_dir(self) -> Path:
        return self.results.repo / self.results.dir / self.run.name

    def rules(self) -> list[Rule]:
        """The criteria as the decide stage takes them."""
        return [c.rule() for c in self.criteria]

    def prompt_defaults(self) -> PromptDefaults:
        m, s = self.model, self.sampling
        return PromptDefaults(s.negative_prompt, tuple(s.seeds), m.width, m.height, m.steps,
                              m.guidance_scale)  # fmt: skip

    def prompts(self) -> list[SamplePrompt]:
        """Prompt file then inline prompts; a prompt without a seed runs once per `seeds`."""
        d = self.prompt_defaults()
        out = parse_prompt_file(self.sampling.prompts_file, d) if self.sampling.prompts_file else []
        for p in self.sampling.prompts:
            for seed in (p.seed,) if p.seed is not None else d.seeds:
                out.append(SamplePrompt(
                    text=p.text,
                    negative=d.negative if p.negative is None else p.negative,
                    seed=seed,
                    width=p.width or d.width,
                    height=p.height or d.height,
                    steps=p.steps or d.steps,
                    cfg=d.cfg if p.cfg is None else p.cfg,
                ))  # fmt: skip
        return out

    def review_prompts(self) -> list[SamplePrompt]:
        """The diverse set rendered at review epochs ([] when no review_prompts_file)."""
        f = self.sampling.review_prompts_file
        return parse_prompt_file(f, self.prompt_defaults()) if f else []

    def params(self) -> dict[str, Any]:
        """The plan's "Parameters to Track" JSON, from the kohya config plus [run.params]."""
        ds = self.run.dataset
        # What kohya uses for an option its config leaves out is what it trained with.
        k = {**KOHYA_DEFAULTS, "optimizer_type": kohya_optimizer(self.kohya),
             **{key: v for key, v in self.kohya.items() if key != "optimizer_type"}} \
            if self.kohya else {}
        conv = kohya_network_arg(k, "conv_dim")
        conv_dim: int | None = (int(conv) if conv and conv.isdigit() else 0) if k else None
        params: dict[str, Any] = {
            "run_name": self.run.name,
            "architecture": {"network_dim": k.get("network_dim"),
                             "network_alpha": k.get("network_alpha"), "conv_dim": conv_dim},
            "hyperparameters": {"learning_rate": k.get("learning_rate"),
                                "lr_scheduler": k.get("lr_scheduler"),
                                "max_train_epochs": self.run.max_train_epochs,
                                "optimizer_type": k.get("optimizer_type")},
            "data": {"num_images": ds.num_images if ds.num_images is not None else k.get("num_images"),
                     "caption_version": ds.caption_version, "keep_tokens": k.get("keep_tokens"),
                     "caption_dropout_rate": k.get("caption_dropout_rate")},
            "augmentation": {"noise_offset": k.get("noise_offset")},
        }  # fmt: skip
        return _deep_merge(params, self.run.params)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ----------------------------------------------------------------------------- loading


def _validation_message(path: Path, lines: KeyLines, exc: ValidationError) -> str:
    errors = sorted(exc.errors(), key=lambda e: lines.find(tuple(e["loc"])) or 0)
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key missing"
    else:
        msg = str(first["msg"]).removeprefix("Value error, ")
    line = lines.find(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}{f':{line}' if line else ''}: {dotted_key(loc) or '(top level)'}: {msg}{more}"


def _absolute(base: Path, value: Path) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else (base / value).resolve()


def _looks_local(base: str) -> bool:
    return base.startswith((".", "/", "~")) or base.endswith((".safetensors", ".ckpt"))


def _from_kohya(
    kohya: dict[str, Any], where: dict[str, int], kpath: Path, key: str, kind: type
) -> Any:
    value = kohya.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and kind is int and value < 1:
        ok = False
    if not ok:
        expected = "a positive integer" if kind is int else "a string"
        raise ConfigError(f"{kpath}:{where.get(key, 0)}: {key}: expected {expected}, got {value!r}")
    return value


def _kohya_sampling(kohya: dict[str, Any], kpath: Path, data: dict[str, Any],
                    sampling: SamplingConfig, model: ModelConfig, cwd: Path,
                    warnings: list[str]) -> tuple[SamplingConfig, ModelConfig]:
    """sample_prompts and sample_sampler from the kohya config (ours wins when set), and a
    warning when the trainer's own samples are judged but it does not sample every epoch."""
    prompts = kohya.get("sample_prompts")
    if not sampling.prompts_file and not sampling.prompts and isinstance(prompts, str) and prompts:
        # kohya paths are relative to where train_network.py runs: the trainer's cwd
        sampling = sampling.model_copy(update={"prompts_file": _absolute(cwd, Path(prompts))})
    sampler = kohya.get("sample_sampler")
    if isinstance(sampler, str) and "scheduler" not in (data.get("model") or {}):
        if sampler.lower() in KOHYA_SAMPLERS:
            model = model.model_copy(update={"scheduler": KOHYA_SAMPLERS[sampler.lower()]})
        elif sampling.source == "render":
            warnings.append(f"{kpath}: sample_sampler {sampler!r} has no equivalent here; the "
                            f"daemon renders with {model.scheduler}")
    if sampling.source == "trainer":
        every, steps = kohya.get("sample_every_n_epochs"), kohya.get("sample_every_n_steps")
        if steps:
            warnings.append(f"{kpath}: sample_every_n_steps = {steps}: samples named by step "
                            "are refused; set sample_every_n_epochs = 1 instead")
        if not every:
            warnings.append(f"{kpath}: no sample_every_n_epochs: the trainer renders no "
                            "samples per epoch, so no epoch can be judged (set it to 1)")
        elif every != 1:
            warnings.append(f"{kpath}: sample_every_n_epochs = {every}: the trainer samples "
                            f"every {every} epochs, so only those epochs are judged (set it to 1)")
    return sampling, model


M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, what: str, model: type[M]) -> tuple[M, dict[str, Any], KeyLines]:
    """(validated model, raw data, key lines) of a TOML file; errors are one line with the line."""
    data, text = read_toml(path, what)
    lines = KeyLines(text)
    try:
        return model.model_validate(data), data, lines
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, lines, exc)) from None


def load_config(path: Path | str) -> WatchConfig:
    """Read, validate and complete one watcher config (see docs/INTERFACES.md)."""
    path = Path(path)
    raw, data, lines = read_model(path, "config file", _ConfigFile)

    def fail(loc: Loc, msg: str) -> ConfigError:
        line = lines.find(loc)
        return ConfigError(f"{path}{f':{line}' if line else ''}: {dotted_key(loc)}: {msg}")

    base = path.resolve().parent
    run, model, sampling = raw.run, raw.model, raw.sampling
    trainer = raw.trainer.model_copy(update={
        "cwd": _absolute(base, raw.trainer.cwd),
        "log_file": _absolute(base, raw.trainer.log_file),
    })  # fmt: skip
    kohya: dict[str, Any] = {}
    kohya_path: Path | None = None
    updates: dict[str, Any] = {"state_dir": _absolute(base, run.state_dir)}
    if run.output_dir is not None:
        updates["output_dir"] = _absolute(base, run.output_dir)
    if run.kohya_config is not None:
        kohya_path = _absolute(base, run.kohya_config)
        if not kohya_path.is_file():
            raise fail(("run", "kohya_config"), f"file not found: {kohya_path}")
        kohya, where = load_kohya(kohya_path)
        updates["kohya_config"] = kohya_path
        if run.output_dir is None:
            out = _from_kohya(kohya, where, kohya_path, "output_dir", str)
            # kohya paths are relative to where train_network.py runs: the trainer's cwd
            updates["output_dir"] = _absolute(trainer.cwd, Path(out)) if out else None
        for key, kind in (("output_name", str), ("max_train_epochs", int),
                          ("save_every_n_epochs", int)):  # fmt: skip
            if getattr(run, key) is None:
                updates[key] = _from_kohya(kohya, where, kohya_path, key, kind)
        if model.base is None:
            pretrained = _from_kohya(kohya, where, kohya_path, "pretrained_model_name_or_path", str)
            model = model.model_copy(update={"base": pretrained})
    run = run.model_copy(update=updates)
    for key in ("output_dir", "output_name", "max_train_epochs"):
        if getattr(run, key) is None:
            raise fail(("run",), f"{key} is required (set run.{key} or point run.kohya_config "
                                 "at a kohya config that has it)")  # fmt: skip
    if run.save_every_n_epochs is None:
        run = run.model_copy(update={"save_every_n_epochs": 1})
    trainer_source = sampling.source == "trainer"
    if model.base is None and not trainer_source:  # the trainer's samples need no model here
        raise fail(("model",), "base is required (set model.base or run.kohya_config)")
    # A hub id stays as it is; a local path is relative to whoever named it.
    base_dir = base if raw.model.base is not None else trainer.cwd
    # "models/sd15" whose first folder exists here is a path too (else a missing model looks
    # like a hub id, and a typo becomes a network attempt)
    if model.base is not None and (_looks_local(model.base) or (base_dir / model.base).exists()
                                   or (base_dir / Path(model.base).parts[0]).is_dir()):
        model = model.model_copy(update={"base": str(_absolute(base_dir, Path(model.base)))})
    sampling = sampling.model_copy(update={
        "prompts_file": _absolute(base, sampling.prompts_file) if sampling.prompts_file else None,
        "review_prompts_file": (_absolute(base, sampling.review_prompts_file)
                                if sampling.review_prompts_file else None),
    })  # fmt: skip
    warnings: list[str] = []
    if kohya_path is not None:
        sampling, model = _kohya_sampling(kohya, kohya_path, data, sampling, model, trainer.cwd,
                                          warnings)
    if trainer_source and not sampling.prompts_file and not sampling.prompts:
        raise fail(("sampling", "source"), 'source = "trainer" needs the prompts kohya samples '
                   "with (sampling.prompts_file, or sample_prompts in the kohya config)")
    command: list[str] = []
    for arg in trainer.command:
        if "{kohya_config}" in arg and kohya_path is None:
            raise fail(("trainer", "command"), "{kohya_config} used but run.kohya_config is unset")
        command.append(arg.replace("{config_dir}", str(base))
                       .replace("{kohya_config}", str(kohya_path)))  # fmt: skip
    trainer = trainer.model_copy(update={"command": command})
    model = _resolve_family(model, data, trainer.command, fail)
    evaluation = raw.evaluation
    per_family: FamilyEvaluation = getattr(evaluation, model.family)
    if per_family.cells is not None:
        evaluation = evaluation.model_copy(update={"cells": per_family.cells})
    if evaluation.clip_model is not None:
        evaluation = _checked_clip_model(evaluation, base, trainer_source, fail)
    criteria = raw.criteria if raw.criteria is not None else default_criteria()
    names = [c.name for c in criteria]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise fail(("criteria", i, "name"), f"duplicate criterion name {name!r}")
    config = WatchConfig(
        path=path.resolve(), kohya=kohya, run=run, model=model, sampling=sampling,
        evaluation=evaluation, results=raw.results.model_copy(
            update={"repo": _absolute(base, raw.results.repo)}),
        trainer=trainer, daemon=raw.daemon, supabase=raw.supabase, alerts=raw.alerts,
        training=raw.training.model_copy(update={"logging_dir": _absolute(
            base, raw.training.logging_dir)} if raw.training.logging_dir else {}),
        criteria=criteria, warnings=warnings,
    )  # fmt: skip
    # Fail now, not at epoch 4, on a bad prompt file, a typo in a colour code, or a rule
    # that no prompt lets the evaluators judge.
    _check_prompts(config, lines, fail, defaults=raw.criteria is None)
    config.review_prompts()
    if run.plan is not None:
        from watcher.plan import load_plan

        plan_path = _absolute(base, run.plan)
        if not plan_path.is_file():
            raise fail(("run", "plan"), f"file not found: {plan_path}")
        config.plan = load_plan(plan_path, run=run.name, rules=config.rules(),
                                state_db=config.state_db)
        config.run = config.run.model_copy(update={"plan": plan_path})
    return config


def _resolve_family(model: ModelConfig, data: dict[str, Any], command: list[str],
                    fail: Any) -> ModelConfig:
    """model.family made definite, and SDXL's native size where width/height are unset."""
    found = {"[trainer] command": family_of_command(command),
             "model.base": family_of_model(model.base) if model.base else None}
    known = {where: fam for where, fam in found.items() if fam is not None}
    if model.family != "auto":
        known["model.family"] = model.family
    if len(set(known.values())) > 1:
        raise fail(("model", "family"), "the run's model family disagrees: " + ", ".join(
            f"{where} says {fam}" for where, fam in known.items()))
    family = next(iter(known.values()), "sd15")
    update: dict[str, Any] = {"family": family}
    for key in ("width", "height"):
        if key not in (data.get("model") or {}):
            update[key] = NATIVE_SIZE[family]
    return model.model_copy(update=update)


def _checked_clip_model(evaluation: EvaluationConfig, base: Path, trainer_source: bool,
                        fail: Any) -> EvaluationConfig:
    """The clip_model folder made absolute and checked now, in one line, not at epoch 1."""
    from watcher.clipjudge import clip_model_problem

    assert evaluation.clip_model is not None
    if trainer_source:
        raise fail(("evaluation", "clip_model"), 'needs sampling.source = "render" (CLIP runs '
                   "beside the daemon's pipeline; score -c judges other images)")
    folder = _absolute(base, evaluation.clip_model)
    if (problem := clip_model_problem(folder)) is not None:
        raise fail(("evaluation", "clip_model"), problem)
    return evaluation.model_copy(update={"clip_model": folder})


def _check_prompts(config: WatchConfig, lines: KeyLines, fail: Any, *, defaults: bool) -> None:
    prompts = config.prompts()
    # An empty list, from any source, would judge nothing: refused like a missing prompt.
    sampling = config.sampling
    if sampling.prompts_file and not parse_prompt_file(sampling.prompts_file, config.prompt_defaults()):
        raise ConfigError(f"{sampling.prompts_file}: no prompts in the file (the prompt list is empty)")
    if "prompts" in sampling.model_fields_set and not sampling.prompts:
        raise fail(("sampling", "prompts"), "the list is empty: give at least one prompt")
    if sampling.review_prompts_file and not config.review_prompts():
        raise ConfigError(f"{sampling.review_prompts_file}: no prompts in the file "
                          "(sampling.review_prompts_file)")
    inline = {p.text: i for i, p in enumerate(config.sampling.prompts)}
    for prompt in dict.fromkeys(p.text for p in prompts):
        bad = malformed_hex(prompt)
        if not bad:
            continue
        first = bad[0]
        what = (f"malformed colour code {first.token!r} at character {first.position + 1} "
                f"of prompt {prompt!r}")
        if prompt in inline:
            raise fail(("sampling", "prompts", inline[prompt], "text"), what)
        raise ConfigError(f"{config.sampling.prompts_file}: {what}")
    if not prompts:
        return  # nothing rendered yet (status, report): rules are checked once prompts exist
    judgeable = judgeable_metrics((parse_prompt(p.text) for p in prompts),
                                  clip=config.evaluation.clip_model is not None)
    for i, c in enumerate(config.criteria):
        if c.metric in judgeable or c.metric in TRAINING_METRICS:  # the trainer's, not prompts'
            continue
        why = (f"criterion {c.name!r} needs {c.metric}, and no sample prompt names what it "
               "judges (e.g. a background colour); add such a prompt or drop the rule"
               if c.metric not in NEEDS_CLIP else f"criterion {c.name!r} needs {c.metric}: "
               "set [evaluation] clip_model to a local CLIP model folder, or drop the rule")
        if defaults:
            raise fail(("sampling",), f"{why} (it is one of the plan's default criteria: "
                       "list [[criteria]] to choose others)")
        raise fail(("criteria", i, "metric"), why)
