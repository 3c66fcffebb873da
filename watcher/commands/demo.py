"""`epochwatch demo`: the whole loop on the embedded default.

CPU, the tiny random SD1.5-shaped model, SQLite state and a local results git repository.
The stand-in trainer (`simtrain`) writes 10 kohya-format LoRA epochs; the daemon evaluates
each one; the random model cannot draw a green background, so the Epoch 4 rule stops the
trainer before it writes its last epoch. That is the stop path, end to end.
`--sdxl`: the same loop on the tiny SDXL-shaped model (two text encoders, kohya's SDXL LoRA
names), rendered at 512 px: 1024 px, SDXL's native size, costs ~9x the CPU time here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import time
from argparse import Namespace
from pathlib import Path

from launcher.launch import Launch
from watcher import logs
from watcher.commands._common import epochwatch_command, load
from watcher.commands.status import collect
from watcher.config import WatchConfig
from watcher.publish.gitrepo import ResultsRepo
from watcher.store import Store
from watcher.summary import fmt, metric_cells, table_header

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KOHYA_TEMPLATE = REPO_CONFIGS / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "training_config_SD15_KEEP_TOKENS_3.toml"
# The demo is judged by the plan it imitates: its plan.toml, with the demo's run name.
PLAN_TEMPLATE = REPO_CONFIGS / "SD15_KEEP_TOKENS_3_EXPERIMENT" / "plan.toml"

DEMO_PROMPTS = [
    "pixel art portrait of a woman, pink hair (#ff66cc), lips (#cc6666), gold crown (#ffd700), solid green background (#00ff00)",
    "pixel art portrait of a man, brown hair (#8b4513), blue shirt (#1e90ff), solid green background (#00ff00)",
    "pixel art portrait of a girl, purple hair (#9932cc), necklace (#c0c0c0), solid green background (#00ff00)",
    "pixel art portrait of a robot, grey metal (#808080), red eyes (#ff0000), solid green background (#00ff00)",
]

CONFIG_TEMPLATE = """\
# epochwatch demo: CPU, tiny random model, SQLite state, local results repository.
[run]
name = "{name}"
{kohya_line}{plan_line}output_dir = "output"
output_name = "demo_lora"
max_train_epochs = 10
save_every_n_epochs = 1
state_dir = "state"
expected_epoch_minutes = 0.25
overdue_factor = 4.0

[model]
base = "models/{model}"{family_note}
device = "cpu"
dtype = "float32"
scheduler = "dpmsolver++"
steps = 6
guidance_scale = 7.5
width = 512
height = 512
batch_size = 4

[sampling]
seeds = [1234]
review_epochs = []   # the review renders cost CPU time; see configs/ for the real run
prompts = [
{prompts}
]

[evaluation]
cells = 24

[results]
repo = "results"
dir = "runs"

[trainer]
command = [{command}]
cwd = "."
log_file = "logs/trainer.log"
stop_grace_s = 5.0
"""


def setup(workdir: Path, sdxl: bool = False) -> Path:
    """Write `workdir/config.toml` (and the tiny model, SDXL-shaped with sdxl, and the kohya
    config); return its path."""
    from watcher.tinymodel import build_tiny_model

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("output", "state", "results", "logs"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    model = "tiny-sdxl" if sdxl else "tiny-sd"
    build_tiny_model(workdir / "models" / model, seed=0, sdxl=sdxl)
    kohya_line = ""
    if KOHYA_TEMPLATE.exists():
        shutil.copyfile(KOHYA_TEMPLATE, workdir / "kohya.toml")
        kohya_line = 'kohya_config = "kohya.toml"\n'
    name = "DEMO_SDXL_KEEP_TOKENS_3" if sdxl else "DEMO_KEEP_TOKENS_3"
    plan_line = ""
    if PLAN_TEMPLATE.exists():
        text = re.sub(r'(?m)^run = ".*"$', f'run = "{name}"', PLAN_TEMPLATE.read_text(), count=1)
        (workdir / "plan.toml").write_text(text)
        plan_line = 'plan = "plan.toml"\n'
    config = workdir / "config.toml"
    command = [sys.executable, "-m", "watcher", "simtrain", "--config", str(config), "--interval", "8"]
    config.write_text(CONFIG_TEMPLATE.format(
        kohya_line=kohya_line,
        plan_line=plan_line,
        name=name,
        model=model,
        family_note="   # SDXL: found from the model's files (model.family = \"auto\")" if sdxl else "",
        prompts=",\n".join(f'  {{ text = "{p}" }}' for p in DEMO_PROMPTS),
        command=", ".join(f'"{c}"' for c in command),
    ))
    return config


def summary(cfg: WatchConfig) -> str:

    with Store(cfg.state_db) as store:
        s = collect(cfg, store)
    lines = ["", f"{'epoch':>5}  {table_header()}  decision"]
    for e in s["epochs"]:
        lines.append(f"{fmt(e['epoch'], 'd'):>5}  {metric_cells(e)}  {e['decision'] or e['status']}"
                     + (" (after the stop)" if e["after_stop"] else ""))
    written = sorted(Path(cfg.output_dir).glob("*.safetensors"))
    repo = ResultsRepo(cfg.results_repo)
    rel = str(Path(cfg.run_results_dir).relative_to(cfg.results_repo))
    commits = repo.commits_touching(rel)
    lines += [
        "",
        f"trainer: {s['trainer']['state']} ({s['trainer']['cause']}); "
        f"{len(written)} checkpoint files written: {', '.join(p.name for p in written)}",
        *(f"refused: {Path(r['path']).name}: {r['reason']}" for r in s["rejected"]),
        f"results: {s['results']['dir']}",
        f"commits: {len(commits)} in {s['results']['repo']} (git -C {s['results']['repo']} log --oneline)",
        f"state:   {cfg.state_db}  ({epochwatch_command()} status --config {shlex.quote(str(cfg.path))})",
    ]
    return "\n".join(lines)


def run(args: Namespace) -> int:
    if getattr(args, "replay", False):  # the continue path: watcher/commands/demo_replay.py
        from watcher.commands import demo_replay

        return demo_replay.run(args)
    config = setup(Path(args.workdir), sdxl=getattr(args, "sdxl", False))
    if args.setup_only:
        print(config)
        return 0

    logs.configure(json_lines=False)  # a person is watching: readable lines, not JSON
    cfg = load(str(config))
    t0 = time.time()
    launch = Launch(cfg)
    try:
        rc = launch.run()
        interrupted = launch.interruption() if launch.interrupted else None
    finally:
        launch.store.close()
    print(summary(cfg))
    report = Path(cfg.run_results_dir) / "report.md"
    if report.exists():
        print(f"report:  {report} (grid.png, curves.png beside it)")
    print(f"demo took {time.time() - t0:.0f} s")
    if interrupted is not None:  # Ctrl-C: 130, after the summary of what was reached
        raise interrupted
    return rc
