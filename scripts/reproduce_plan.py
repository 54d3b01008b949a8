"""What ``scripts/reproduce_cpu.py`` runs: its models, stages and budgets, the entry
scripts' command lines for each, and which of them are still to do (the plan).

Command lines only; running them is ``reproduce_cpu.run_command``'s job, writing the
summary ``reproduce_summary``'s.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import types
from typing import Any, List, Optional, Sequence, Tuple

from utils.errors import UsageError
from utils.reporting.analyses import VARIANT_FLAGS

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
        f"--num_examples={budget.num_examples}",
        f"--state_file={state}_AutoAttack-full-sq{budget.square_n_queries}.npz",
        f"--results_file={args.report_dir}/autoattack.jsonl"]))
    return cmds


def reference_path(args: argparse.Namespace) -> str:
    return f"{args.report_dir}/paper_cifar10_resnet32.csv"


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


def parse_command(module_name: str, cmd_args: Sequence[str]) -> Any:
    """Import the entry script ``module_name`` and parse ``cmd_args`` as its flags (absl's
    process-wide FLAGS, left parsed); returns the module. UsageError on a bad flag."""
    from absl import flags
    module = importlib.import_module(module_name)
    module.define_flags()
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([PROGRAMS[module_name], *cmd_args])
    except flags.Error as exc:
        raise UsageError(f"{PROGRAMS[module_name]}: {exc}") from None
    return module


def checkpoint_state(model: str, args: argparse.Namespace, budget: Budget
                     ) -> Tuple[pathlib.Path, Optional[int], int]:
    """``(run directory, its last checkpoint epoch or None, epochs wanted)`` of ``model``,
    as the evaluation flags locate it."""
    from absl import flags

    from utils.runs import checkpoints as ckpt
    from utils.cli.flags import eval_run_spec, model_config_from_flags

    parse_command("advtest_iterative", eval_flags(model, args, budget))
    v = types.SimpleNamespace(**flags.FLAGS.flag_values_dict())
    flags.FLAGS.unparse_flags()
    spec = eval_run_spec(v, model_config_from_flags(v))
    run_dir, _ = spec.find_checkpoint(v.model_dir, v.epoch)
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
