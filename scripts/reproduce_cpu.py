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
import dataclasses
import importlib
import os
import pathlib
import sys
import time
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.reporting.analyses import VARIANT_FLAGS  # noqa: E402
from utils.reporting.summary import SQUARE_QUERIES  # noqa: E402
from utils.errors import UsageError  # noqa: E402

MODELS = ("SCE", "MMLDA", "MMC-10-rand", "MMC-10", "AT-MMC-10")
STAGES = ("train", "eval", "report", "analyses")
PROGRAMS = {"train_models": "train_models.py", "advtest_iterative": "advtest_iterative.py",
            "advtest_others": "advtest_others.py",
            "scripts.compare_results": "scripts/compare_results.py",
            "scripts.analyses": "scripts/analyses.py"}
AT_TRAIN = ("--use_advtrain=True", "--attack_method=MadryEtAl", "--adv_ratio=1.0",
            "--use_target=False")
AT_EVAL = ("--use_advtrain=True", "--attack_method_for_advtrain=MadryEtAl", "--adv_ratio=1.0",
           "--use_target=False")
Command = Tuple[str, List[str]]  # (module, its arguments)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one reproduction (see the module docstring for the full run's)."""

    n: int = 1
    epochs: int = 6
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    at_epochs: int = 5
    at_train_size: int = 20000
    num_examples: int = 500
    cw_examples: int = 100
    transform_examples: Optional[int] = None
    pgd_steps: Tuple[int, int] = (10, 50)
    strong_steps: int = 50  # APGD-CE, APGD-T (per target), AutoAttack cascade
    fab_n_iter: int = 100  # full AutoAttack: FAB-T steps per target (AutoAttack's)
    # full AutoAttack: Square queries, REDUCED (AutoAttack: 5000; measured on SCE with 5000:
    # ~50 s per 50 images at ε 8 on the shared 2 cores, too slow for AT-MMC-10's many
    # robust points within the ~50 min the five models' full AutoAttack may take)
    square_n_queries: int = 1000
    cw_binary_search_steps: int = 5
    cw_max_iterations: int = 100
    verbose: int = 1
    # scripts/analyses.py on the trained models (all test images) / on runs of its own
    analyses_models: Tuple[str, ...] = ("--timing_steps=50", "--timing_rounds=5",
                                        "--ood_examples=500")
    analyses_own: Tuple[str, ...] = ("--train_size=6000", "--num_examples=2000",
                                     "--cmm_pgd_examples=200", "--features_examples=2000")


FULL = Budget()
DRY = Budget(epochs=1, train_size=50, test_size=20, at_epochs=1, at_train_size=50,
             num_examples=6, cw_examples=3, transform_examples=6, pgd_steps=(1, 2), strong_steps=2,
             fab_n_iter=2, square_n_queries=5,
             cw_binary_search_steps=1, cw_max_iterations=1, verbose=0,
             analyses_models=("--timing_steps=1", "--timing_rounds=1", "--ood_examples=5",
                              "--num_examples=20"),
             analyses_own=("--train_size=50", "--num_examples=20", "--cmm_pgd_examples=3",
                           "--cmm_pgd_iter=1", "--cmm_values=1,10", "--features_examples=10"))


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


# ------------------------------------------------------------------ command lines

def common_flags(args: argparse.Namespace, budget: Budget) -> List[str]:
    """Flags naming a run, shared by training and evaluation."""
    flags = [f"--dataset={args.dataset}", "--version=1", f"--n={budget.n}", "--batch_size=50",
             "--optimizer=Adam", "--lr=0.001", "--mean_var=10", f"--model_dir={args.runs_dir}",
             f"--seed={args.seed}"]
    return flags + ([f"--data_dir={args.data_dir}"] if args.data_dir else [])


def model_flags(model: str) -> List[str]:
    flags = VARIANT_FLAGS[model[3:] if model.startswith("AT-") else model]
    return [f"--{k}={v}" for k, v in flags.items()]


def train_command(model: str, args: argparse.Namespace, budget: Budget) -> Command:
    at = model.startswith("AT-")
    epochs = budget.at_epochs if at else budget.epochs
    size = budget.at_train_size if at else budget.train_size
    extra = list(AT_TRAIN) if at else ["--use_advtrain=False"]
    extra += [f"--epochs={epochs}", "--checkpoint_every=1", f"--verbose={budget.verbose}"]
    extra += [f"--train_size={size}"] if size else []
    extra += [f"--test_size={budget.test_size}"] if budget.test_size else []
    return "train_models", common_flags(args, budget) + model_flags(model) + extra


def eval_flags(model: str, args: argparse.Namespace, budget: Budget) -> List[str]:
    at = model.startswith("AT-")
    epoch = budget.at_epochs if at else budget.epochs
    return (common_flags(args, budget) + model_flags(model)
            + (list(AT_EVAL) if at else ["--use_advtrain=False"])
            + [f"--epoch={epoch}", "--progress=False"])


def eval_commands(model: str, args: argparse.Namespace, budget: Budget) -> List[Command]:
    """PGD-10/50 tar/un at ε 8, 16; C&W tar/un; Gaussian noise; rotation; APGD-CE, APGD-T,
    the AutoAttack-style cascade (``autoattack-lite``) and full AutoAttack (untargeted) at
    ε 8, 16."""
    base = eval_flags(model, args, budget)
    pgd = f"--results_file={args.report_dir}/pgd.jsonl"
    others = f"--results_file={args.report_dir}/others.jsonl"
    strong = f"--results_file={args.report_dir}/apgd.jsonl"
    cmds: List[Command] = []
    for steps in budget.pgd_steps:
        for target in ("True", "False"):
            cmds.append(("advtest_iterative", base + [
                "--attack_method=MadryEtAl", f"--target={target}", f"--num_iter={steps}",
                "--eps_256=8,16", f"--num_examples={budget.num_examples}", pgd]))
    for target in ("True", "False"):
        cmds.append(("advtest_others", base + [
            "--attack_method=CarliniWagnerL2", f"--target={target}",
            f"--num_examples={budget.cw_examples}",
            f"--CW_binary_search_steps={budget.cw_binary_search_steps}",
            f"--CW_max_iterations={budget.cw_max_iterations}", others]))
    size = [f"--num_examples={budget.transform_examples}"] if budget.transform_examples else []
    cmds.append(("advtest_others", base + ["--attack_method=Gaussian", "--noise_sigma=0.05",
                                           *size, others]))
    cmds.append(("advtest_others", base + ["--attack_method=Rotation",
                                           "--rotation_degrees=30", *size, others]))
    state = f"{args.runs_dir}/eval_state/{model}"
    for attack in ("APGD", "APGD-T", "AutoAttack"):
        cmds.append(("advtest_iterative", base + [
            f"--attack_method={attack}", "--target=False", f"--num_iter={budget.strong_steps}",
            "--eps_256=8,16", f"--num_examples={budget.num_examples}",
            f"--state_file={state}_{attack}.npz", strong]))
    cmds.append(("advtest_iterative", base + [
        "--attack_method=AutoAttack", "--ensemble=autoattack", "--target=False",
        f"--num_iter={budget.strong_steps}", f"--fab_n_iter={budget.fab_n_iter}",
        f"--square_n_queries={budget.square_n_queries}", "--eps_256=8,16",
        f"--num_examples={budget.num_examples}", f"--state_file={state}_AutoAttack-full-sq{budget.square_n_queries}.npz",
        f"--results_file={args.report_dir}/autoattack.jsonl"]))
    return cmds


def report_commands(args: argparse.Namespace) -> List[Command]:
    return [("scripts.compare_results", [
        f"--results={args.report_dir}/*.jsonl", f"--reference={reference_path(args)}",
        f"--out_dir={args.report_dir}", "--report_name=report", f"--dataset={args.dataset}",
        "--paper_dataset=cifar10", "--match_dataset=False", "--match_arch=False"])]


def analyses_commands(args: argparse.Namespace, budget: Budget) -> List[Command]:
    """Paper 000's analyses: on the trained models (training time, OOD, g-SCE) and on
    runs of their own under ``<runs_dir>/analyses`` (C_MM sweep, 2-d features)."""
    base = common_flags(args, budget)
    ood = "fashion_mnist" if args.dataset == "mnist" else "mnist"
    out = [f"--out_dir={args.analyses_dir}", "--skip_done", f"--epoch={budget.epochs}"]
    own = [f for f in base if not f.startswith("--model_dir=")]
    return [("scripts.analyses", base + ["--which=training_time,ood,gsce", *out,
                                         f"--ood_dataset={ood}", *budget.analyses_models]),
            ("scripts.analyses", own + [f"--model_dir={args.runs_dir}/analyses",
                                        "--which=cmm_sweep,features_2d", "--train_missing",
                                        *out, *budget.analyses_own])]


# ------------------------------------------------------------------ running

def command_text(cmd: Command) -> str:
    """The command line as the records store it (``provenance()``: ``sys.argv``)."""
    return " ".join([PROGRAMS[cmd[0]], *cmd[1]])


def _parse(module_name: str, cmd_args: Sequence[str]) -> Any:
    """The entry script's flag values for ``cmd_args`` (a namespace)."""
    from absl import flags
    module = importlib.import_module(module_name)
    module.define_flags()
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([PROGRAMS[module_name], *cmd_args])
    except flags.Error as exc:
        raise UsageError(f"{PROGRAMS[module_name]}: {exc}") from None
    return module


def run_command(cmd: Command) -> None:
    """Run an entry script's ``main`` in-process with ``sys.argv`` set to its command line
    (which its records and flags.json store); UsageErrors propagate."""
    import keras
    from absl import flags

    module = _parse(*cmd)
    saved = sys.argv
    sys.argv = [PROGRAMS[cmd[0]], *cmd[1]]
    try:
        module.main([PROGRAMS[cmd[0]]])
    finally:
        sys.argv = saved
        flags.FLAGS.unparse_flags()
        keras.backend.clear_session()  # also collects garbage (free_memory=True)


def checkpoint_state(model: str, args: argparse.Namespace, budget: Budget
                     ) -> Tuple[pathlib.Path, Optional[int], int]:
    """``(run directory, its last checkpoint epoch or None, epochs wanted)`` of ``model``,
    as the evaluation flags locate it."""
    from absl import flags

    from utils.training import checkpoints as ckpt
    from utils.cli.flags import model_config_from_flags
    from utils.models.loading import checkpoint_location

    _parse("advtest_iterative", eval_flags(model, args, budget))
    v = types.SimpleNamespace(**flags.FLAGS.flag_values_dict())
    flags.FLAGS.unparse_flags()
    _, run_dir, _ = checkpoint_location(
        model_config_from_flags(v), model_dir=v.model_dir, dataset=v.dataset,
        optimizer=v.optimizer, lr=v.lr, batch_size=v.batch_size, epoch=v.epoch,
        use_advtrain=v.use_advtrain, attack_method_for_advtrain=v.attack_method_for_advtrain,
        adv_ratio=v.adv_ratio, use_target=v.use_target)
    return run_dir, ckpt.latest_checkpoint(run_dir), v.epoch


def done_commands(report_dir: str) -> set:
    """Command lines that already have records in ``report_dir``."""
    from utils.results import read_records
    done = set()
    for name in ("pgd.jsonl", "others.jsonl", "apgd.jsonl", "autoattack.jsonl"):
        done |= {r.get("command") for r in read_records(pathlib.Path(report_dir) / name)}
    return done


def plan(args: argparse.Namespace, budget: Budget, models: Sequence[str],
         stages: Sequence[str]) -> List[Tuple[str, Command]]:
    """``(why, command)`` for everything still to do, in order; ``why`` is a short note."""
    todo: List[Tuple[str, Command]] = []
    if "train" in stages:
        for model in models:
            run_dir, last, epochs = checkpoint_state(model, args, budget)
            if last is not None and last >= epochs:
                print(f"[skip] {model}: trained ({run_dir}, epoch {last})", flush=True)
                continue
            cmd = train_command(model, args, budget)
            if last is not None:
                cmd = (cmd[0], cmd[1] + ["--resume=True"])
            todo.append((f"train {model}", cmd))
    if "eval" in stages:
        done = done_commands(args.report_dir)
        for model in models:
            for cmd in eval_commands(model, args, budget):
                if command_text(cmd) in done:
                    continue
                todo.append((f"eval {model}", cmd))
    if "report" in stages:
        todo += [("report", cmd) for cmd in report_commands(args)]
    if "analyses" in stages:
        todo += [("analyses", cmd) for cmd in analyses_commands(args, budget)]
    return todo


# ------------------------------------------------------------------ report files

LABELS = {"SCE": "SCE", "MMLDA": "MMLDA", "MMC-10-rand": "MMC-10 (rand)", "MMC-10": "MMC-10",
          "AT-MMC-10": "AT-un (MMC-10)"}
PAPER_TABLES = ("Table 1", "Table 2")
# Later re-evaluations of the paper's models beside them (the AutoAttack column).
REEVALUATIONS = (("DESIGN.md", "RobustBench / AutoAttack entry"),)
REFERENCE = ROOT / "reports" / "reference" / "paper_numbers.csv"


def reference_path(args: argparse.Namespace) -> str:
    return f"{args.report_dir}/paper_cifar10_resnet32.csv"


def write_reference_subset(args: argparse.Namespace) -> None:
    """002 Tables 1-2 (CIFAR-10, ResNet-32) of the reference and the RobustBench AutoAttack
    re-evaluation of its AT-MMC model, the setting compared with (Table 5's ResNet-110 /
    CIFAR-100 rows and the other sources left out)."""
    from utils.reporting.summary import write_reference_subset as write
    write(REFERENCE, pathlib.Path(reference_path(args)), source="002", tables=PAPER_TABLES,
          dataset="cifar10", n_blocks=5, also=REEVALUATIONS)


def _training(args: argparse.Namespace, budget: Budget) -> Dict[str, Dict[str, Any]]:
    """Per method label: epochs, images, training minutes and last test accuracy
    (history.csv), evaluation minutes (timings.json)."""
    import csv
    import json
    timings = pathlib.Path(args.report_dir) / "timings.json"
    steps = json.loads(timings.read_text()) if timings.exists() else []
    out: Dict[str, Dict[str, Any]] = {}
    for model in MODELS:
        row = out.setdefault(LABELS[model], {})
        seconds = [s["seconds"] for s in steps if s["step"] == f"eval {model}"]
        if seconds:
            row["eval_minutes"] = sum(seconds) / 60
        run_dir, last, _ = checkpoint_state(model, args, budget)
        history = run_dir / "history.csv"
        if last is None or not history.exists():
            continue
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        at = model.startswith("AT-")
        row.update(epochs=len(rows), minutes=sum(float(r["seconds"]) for r in rows) / 60,
                   train_images=(budget.at_train_size if at else budget.train_size) or "all",
                   test_accuracy=float(rows[-1]["val_accuracy"]) if rows else None)
    return out


def _intro(args: argparse.Namespace, budget: Budget) -> List[str]:
    all_images = "all" if budget.train_size is None else f"{budget.train_size:,}"
    return [
        "# CPU-scale reproduction: ours vs paper 002 (Tables 1-2)", "",
        f"Made by `python {args.command}`; "
        "every number's exact command line is in `pgd.jsonl` / `others.jsonl` / `apgd.jsonl` "
        "/ `autoattack.jsonl` beside this file, the cell-by-cell comparison (Δ, flags) in [report.md](report.md).", "",
        f"> **Datasets and models differ.** Ours: {args.dataset}, ResNet-{6 * budget.n + 2} "
        f"v1, Adam lr 1e-3, batch 50, {budget.epochs} epoch(s) on {all_images} training "
        f"images (AT-MMC-10: PGD-10 adversarial training, {budget.at_epochs} epoch(s) on "
        f"{budget.at_train_size:,} images). Paper rows: CIFAR-10, ResNet-32, momentum SGD, "
        "200 epochs. Compare orderings and gaps, not absolute values.", "",
        f"> **Reduced C&W budget**: {budget.cw_binary_search_steps} binary-search steps × "
        f"{budget.cw_max_iterations} iterations on {budget.cw_examples} images (paper: 9 × "
        "1,000 on 500); a weaker attack reports larger distortions, so our C&W L2 is an "
        "upper bound on what the paper's budget would find. Its paper cells are 'not run' "
        "in report.md (steps differ) and shown side by side here.", "",
        f"PGD: adaptive objectives (mmc_un1 / mmc_tar1 for the MMC heads; cross-entropy, "
        "the loss they train on, for SCE and MMLDA), random start, step 2/256, "
        f"PGD-{budget.pgd_steps[0]} and "
        f"PGD-{budget.pgd_steps[1]} on the first {budget.num_examples} test images; "
        "targeted columns give the accuracy on the true labels (targets uniform among the "
        "wrong labels). Noise σ 0.05 and rotation ±30° on "
        f"{budget.transform_examples or 'all'} test images. Accuracies in %, C&W in mean "
        "L2 ([0, 1] pixels; failures count 0, as the original).",
        *_square_note(budget)]


def _square_note(budget: Budget) -> List[str]:
    if budget.square_n_queries == SQUARE_QUERIES:
        return []
    return ["", f"> **Reduced Square budget** in full AutoAttack: {budget.square_n_queries:,} "
            f"queries (AutoAttack: {SQUARE_QUERIES:,}; FAB-T at AutoAttack's "
            f"{budget.fab_n_iter} steps per target): a weaker Square, so the full-AutoAttack "
            "accuracies are upper bounds on what the standard budget would leave."]


def write_summary(args: argparse.Namespace, budget: Budget) -> pathlib.Path:
    """``<report_dir>/summary.md``: :func:`utils.reporting.summary.render_summary`."""
    from utils.fileio import atomic_write_text
    from utils.reporting.compare import load_reference, load_results
    from utils.reporting.summary import render_summary, strong_columns, summary_columns

    records = load_results([f"{args.report_dir}/*.jsonl"])
    cells = load_reference(reference_path(args))
    text = render_summary(records, cells, summary_columns(budget.pgd_steps),
                          [LABELS[m] for m in MODELS], _training(args, budget),
                          intro=_intro(args, budget),
                          strong=strong_columns(budget.strong_steps, budget.pgd_steps[-1],
                                                full=(budget.fab_n_iter,
                                                      budget.square_n_queries)))
    path = pathlib.Path(args.report_dir) / "summary.md"
    atomic_write_text(path, text)
    return path


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
