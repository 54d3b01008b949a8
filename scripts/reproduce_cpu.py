r"""CPU-scale reproduction of paper 002 Tables 1-2 on real data (Fashion-MNIST), resumable.

Trains SCE, MMLDA, MMC-10 (rand), MMC-10 and a short AT-MMC-10, attacks each with the
entry scripts' real command lines (run in-process, so every record carries its exact
command), then writes the comparison with the paper (``scripts/compare_results.py``) and
a summary. Stages: ``train``, ``eval``, ``report`` (default) and ``analyses`` (paper
000's analyses via ``scripts/analyses.py``, into ``--analyses_dir``).

Budget (2 CPU cores; chosen so one model trains in <= 20 min and the default stages take
<= 2 h; paper 002 trains ResNet-32 for 200 epochs on CIFAR-10, see the summary):
  - ResNet-8 v1 (``--n=1``, 64-d features), batch 50, Adam lr 1e-3 (momentum SGD lr 0.01,
    the paper's, moves MMC too slowly for a budget of a few epochs), C_MM = 10,
    augmentation on.
  - Standard models: all 60,000 training images, 6 epochs (measured on 2 idle cores:
    ~0.7 min per epoch, ~4 min per model). AT-MMC-10: PGD-10 (ε 8/256, step 2/256,
    adversarial examples only) on a seeded 20,000-image subset, 5 epochs (measured: ~0.5
    min per 8,000 images: ~6 min).
  - Adaptive PGD-10 and PGD-50 (random start, step 2/256), targeted and untargeted, ε 8 and
    16 /256, on the first 500 test images; C&W-L2 targeted and untargeted on the first 100
    with a REDUCED budget, 5 binary-search steps x 100 iterations (the paper: 9 x 1,000,
    ~30 min per 100 images of ResNet-14 here); Gaussian noise (σ 0.05) and rotation (±30°)
    on all 10,000 test images.
  - Beyond the paper (issue 6): APGD-CE, APGD-T (9 target classes) and the AutoAttack-style
    cascade (APGD-CE then APGD-T), untargeted, adaptive objectives, 50 iterations each (the
    PGD-50 budget; APGD-T: per target class), ε 8 and 16 /256, the same 500 images; records
    in ``apgd.jsonl``, the cascade's state in ``<runs_dir>/eval_state`` (resumable).
  - Issue 15: full AutoAttack (``--ensemble=autoattack``: APGD-CE, APGD-T, FAB-T, Square),
    untargeted, adaptive objectives, APGD members 50 iterations as above, FAB-T 100 steps
    per target (AutoAttack's), Square 1,000 queries (REDUCED: AutoAttack's is 5,000; see
    ``Budget``), ε 8 and 16 /256, the same 500 images; records in ``autoattack.jsonl``.
  - Measured end to end with 2 epochs (ResNet-8, AT on 8,000 images): training 6.2 min,
    evaluation 19.4 min, analyses 2.6 min; this budget's figures are in
    ``<report_dir>/timings.json`` and the summary.

Skips what is done: a model whose checkpoint exists is not retrained (a run cut short
resumes from its last epoch); an evaluation whose exact command already has a record in
``--report_dir`` is not rerun (delete the records to redo it); an analysis whose output
has the same settings is not redone. So it can be run in parts (``--only``, ``--stages``);
``<report_dir>/timings.json`` keeps what each step took.

    python scripts/reproduce_cpu.py                       # what `make reproduce-cpu` runs
    python scripts/reproduce_cpu.py --only=SCE,MMC-10 --stages=train,eval
    python scripts/reproduce_cpu.py --stages=analyses
    python scripts/reproduce_cpu.py --print_only          # list the commands
    python scripts/reproduce_cpu.py --dry_run --dataset=mnist --data_dir=/tmp/fake \
        --runs_dir=/tmp/r --report_dir=/tmp/rep --analyses_dir=/tmp/an   # tiny smoke run
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import List, Optional, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

# What to run (models, budgets, command lines, the plan) and the summary written after the
# report: each in its own module.
from scripts.reproduce_plan import (  # noqa: E402
    DRY, FULL, MODELS, PROGRAMS, STAGES, Command, command_text, parse_command, plan)
from scripts.reproduce_summary import write_reference_subset, write_summary  # noqa: E402
from utils.errors import UsageError  # noqa: E402


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data_dir", default=None, help="default: the loaders' search path "
                   "(Fashion-MNIST: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--runs_dir", default="runs/cpu_repro", help="checkpoints (relative "
                   "paths: to the repository root)")
    p.add_argument("--report_dir", default="reports/cpu_repro", help="records and report")
    p.add_argument("--analyses_dir", default="reports/analyses")
    p.add_argument("--only", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    p.add_argument("--stages", default="train,eval,report", help="comma list of "
                   + ", ".join(STAGES))
    p.add_argument("--dry_run", action="store_true", help="tiny settings for a smoke test")
    p.add_argument("--print_only", action="store_true", help="print the commands, run nothing")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _split(text: str, allowed: Sequence[str], flag: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise UsageError(f"--{flag}={text}: choose from {', '.join(allowed)}")
    return [a for a in allowed if a in items]


def run_command(cmd: Command) -> None:
    """Run an entry script's ``main`` in-process with ``sys.argv`` set to its command line
    (which its records and flags.json store); UsageErrors propagate."""
    import keras
    from absl import flags

    module = parse_command(*cmd)
    saved = sys.argv
    sys.argv = [PROGRAMS[cmd[0]], *cmd[1]]
    try:
        module.main([PROGRAMS[cmd[0]]])
    finally:
        sys.argv = saved
        flags.FLAGS.unparse_flags()
        keras.backend.clear_session()  # also collects garbage (free_memory=True)


# ------------------------------------------------------------------ main

def run(args: argparse.Namespace) -> None:
    from utils.data import find_data_dir
    from utils.reporting.summary import log_seconds

    models = _split(args.only, MODELS, "only")
    stages = _split(args.stages, STAGES, "stages")
    budget = DRY if args.dry_run else FULL
    if set(stages) & {"train", "eval", "analyses"}:
        find_data_dir(args.dataset, args.data_dir)  # a missing dataset: one line, exit 2
    todo = plan(args, budget, models, stages)
    if args.print_only:
        for _, cmd in todo:
            print(command_text(cmd))
        return
    for number, (why, cmd) in enumerate(todo, 1):
        print(f"[{number}/{len(todo)}] {why}: {command_text(cmd)}", flush=True)
        start = time.time()
        if cmd[0] == "scripts.compare_results":
            write_reference_subset(args)
        run_command(cmd)
        if cmd[0] == "scripts.compare_results":
            print(f"wrote {write_summary(args, budget)}", flush=True)
        log_seconds(pathlib.Path(args.report_dir) / "timings.json", why, command_text(cmd),
                    time.time() - start)
        print(f"[{number}/{len(todo)}] {why}: {time.time() - start:.0f} s", flush=True)
    if not todo:
        print("nothing to do: every selected step is done already")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.command = " ".join(["scripts/reproduce_cpu.py", *argv])
    cwd = os.getcwd()
    os.chdir(ROOT)  # relative paths (defaults included) are relative to the repository
    try:
        run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        os.chdir(cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
