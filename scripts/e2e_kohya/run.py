"""The e2e check on the real trainer: `epochwatch launch` runs kohya's train_network.py on
the CPU while the daemon watches, a stop rule fails, and the outcome is checked.

    .venv/bin/python scripts/e2e_kohya/run.py --sd-scripts DIR --e2e-dir DIR [--source render|trainer|both]

Run by `make e2e-kohya` after setup_venv.sh and build_model.py. Each source gets a fresh
folder E2E_DIR/run-<source>/ (the model stays cached in E2E_DIR/model). Exit 0 only when every
check passes; the checks and the figures go to stdout and E2E_DIR/run-<source>/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]
from checks import check_outcome  # noqa: E402
from prepare import REPO, RunSpec, prepare  # noqa: E402


class TreeSampler(threading.Thread):
    """Samples the launch process tree each second: peak RSS (one process and the whole tree)
    and every pid of the trainer's process group, to check none outlives the stop."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_tree = 0
        self.peak_by_role: dict[str, int] = {}
        self.trainer_pids: dict[int, str] = {}
        self.done = threading.Event()

    def _role(self, p: psutil.Process) -> str:
        cmd = " ".join(p.cmdline())
        if "train_network.py" in cmd:
            return "trainer"
        return "daemon" if " watch " in cmd else "launcher"

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                procs = [psutil.Process(self.root)] + psutil.Process(self.root).children(recursive=True)
            except psutil.Error:
                continue
            total = 0
            for p in procs:
                try:
                    rss, role = p.memory_info().rss, self._role(p)
                    if role == "trainer":
                        # the latest: a child caught between fork and exec shows its parent's
                        self.trainer_pids[p.pid] = " ".join(p.cmdline()[:3])
                except psutil.Error:
                    continue
                total += rss
                self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)
            self.peak_tree = max(self.peak_tree, total)


def run_source(args: argparse.Namespace, source: str) -> dict[str, Any]:
    e2e = Path(args.e2e_dir).resolve()
    spec = RunSpec(work=e2e / f"run-{source}", sd_scripts=Path(args.sd_scripts).resolve(),
                   kohya_venv=e2e / "venv", model=e2e / "model", tokenizer_cache=e2e / "tokenizers",
                   source=source, epochs=args.epochs, stop_epoch=args.stop_epoch)
    if spec.work.exists():
        shutil.rmtree(spec.work)
    config = prepare(spec)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)  # this checkout's epochwatch, for the daemon subprocess too
    env["HF_HOME"] = str(e2e / "hf-home")  # no accelerate config or hub cache from the user
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    cmd = [sys.executable, "-m", "watcher", "launch", "--config", str(config)]
    print(f"== {source}: {' '.join(cmd)}", flush=True)
    started = time.time()
    with open(spec.work / "launch.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            sys.stdout.write(f"   {time.time() - started:6.0f}s  {line.decode(errors='replace')}")
            sys.stdout.flush()
        rc = proc.wait()
    wall = time.time() - started
    sampler.done.set()
    sampler.join()
    time.sleep(0.5)  # a SIGKILLed grandchild may still be in the kernel's exit path
    checks, epochs = check_outcome(spec, config, env, rc, started, sampler.trainer_pids,
                                   sampler.peak_by_role.get("daemon", 0))
    summary = {
        "source": source, "command": " ".join(cmd), "launch_rc": rc, "wall_s": round(wall, 1),
        "peak_rss_mb": {k: round(v / 2**20) for k, v in sampler.peak_by_role.items()},
        "peak_tree_rss_mb": round(sampler.peak_tree / 2**20),
        "epochs": epochs, "checks": checks, "passed": all(c["ok"] for c in checks),
    }
    (spec.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"== {source}: wall {wall:.0f} s, peak RSS {summary['peak_rss_mb']} MB, "
          f"tree {summary['peak_tree_rss_mb']} MB")
    for e in epochs:
        print(f"   epoch {e['epoch']}: {e}")
    for c in checks:
        print(f"   [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sd-scripts", required=True)
    ap.add_argument("--e2e-dir", required=True)
    ap.add_argument("--source", choices=["render", "trainer", "both"], default="render")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--stop-epoch", type=int, default=2)
    args = ap.parse_args()
    if not (Path(args.sd_scripts) / "train_network.py").is_file():
        print(f"e2e-kohya: {args.sd_scripts} has no train_network.py (SD_SCRIPTS=sd-scripts checkout)",
              file=sys.stderr)
        return 2
    sources = ["render", "trainer"] if args.source == "both" else [args.source]
    results = [run_source(args, s) for s in sources]
    failed = [r["source"] for r in results if not r["passed"]]
    print(f"e2e-kohya: {'FAILED: ' + ', '.join(failed) if failed else 'passed'} "
          f"({', '.join(r['source'] for r in results)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
