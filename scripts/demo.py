"""The README's main job: train a small SCE and a small MMC-10 model on real data
(Fashion-MNIST), attack both with adaptive PGD-10 and an AutoAttack-style cascade, and
print the comparison.

Each model: ResNet-8 v1 (n=1), 64-d features, Adam lr 1e-3, batch 50, a seeded
subset of the training set, evaluated on the first ``--test_size`` test images; then
untargeted PGD-10 (random start, step 2/256) at ε = 8/256 and 16/256 on the first
``--attack_examples`` test images, with the adaptive objective of each model (``ce``
for SCE, ``mmc_un1`` for MMC, paper 002 B.4); then, on the same images and ε, the
``autoattack-lite`` cascade (APGD-CE, then APGD-T over the 9 most likely wrong classes
with the targeted counterpart: ``dlr_targeted`` for SCE, ``mmc_tar1`` for MMC;
``--aa_iter`` iterations each). It is not the full AutoAttack (the ``autoattack`` preset
of ``advtest_iterative.py`` adds FAB-T and Square), so its accuracy is an upper bound.
Results go to ``demo_runs/summary.json`` and ``demo_runs/summary.csv``.

    python scripts/demo.py                    # what `make demo` runs
    python scripts/demo.py --epochs=5 --train_size=60000
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli.common import call_guarded, quiet_tensorflow  # noqa: E402

if __name__ == "__main__":  # run as a script: the imports below load TensorFlow, quietly
    quiet_tensorflow()
from utils.fileio import text_item, write_set  # noqa: E402
from utils.runs.checkpoints import ensure_writable_dir  # noqa: E402
from utils.runs.model_config import ModelConfig  # noqa: E402
from utils.runs.spec import RunSpec  # noqa: E402
from utils.data import load_dataset  # noqa: E402
from utils.errors import UsageError  # noqa: E402
from utils.evaluation.ensemble import evaluate_ensemble, parse_members  # noqa: E402
from utils.evaluation.members import EnsembleSettings  # noqa: E402
from utils.evaluation.ensemble import evaluate_attack  # noqa: E402
from utils.attacks.objectives import select_objective, targeted_counterpart  # noqa: E402
from utils.training.run import RunConfig, train  # noqa: E402

ATTACK = "MadryEtAl"
EPS_256 = (8, 16)

MODELS = {"SCE": "sce", "MMC-10": "mmc"}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line UsageErrors (exit 2), not a usage block."""

    def error(self, message: str):
        raise UsageError(f"{message}; see --help")


def parse_args(argv):
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out_dir", default=str(ROOT / "demo_runs"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train_size", type=int, default=10000)
    p.add_argument("--test_size", type=int, default=2000)
    p.add_argument("--attack_examples", type=int, default=500)
    p.add_argument("--aa_iter", type=int, default=50,
                   help="APGD iterations per cascade member (APGD-T: per target class)")
    p.add_argument("--n", type=int, default=1, help="ResNet v1 blocks per stage (1: ResNet-8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1)
    args = p.parse_args(argv)
    for name in ("epochs", "train_size", "test_size", "attack_examples", "aa_iter"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")  # exit status 2
    return args


def check_before_work(args) -> None:
    """Sizes against the dataset, then a writable ``--out_dir``, before any training."""
    full = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    for flag, split, size in (("train_size", full.x_train, args.train_size),
                              ("test_size", full.x_test, args.test_size),
                              ("attack_examples", full.x_test, args.attack_examples)):
        if size > len(split):
            raise UsageError(f"--{flag}={size} exceeds the {len(split)} "
                             f"{'training' if split is full.x_train else 'test'} images of "
                             f"{args.dataset}; pass at most {len(split)}")
    ensure_writable_dir(pathlib.Path(args.out_dir), flag="--out_dir")


def attack_row(model, loss: str, args) -> dict:
    """Adaptive PGD-10 and ``autoattack-lite`` accuracy at each ε of ``EPS_256`` on the
    first attack examples (fractions in [0, 1])."""
    data = load_dataset(args.dataset, args.data_dir, test_size=args.attack_examples,
                        seed=args.seed)
    objective = select_objective(loss, ATTACK, targeted=False, adaptive=True)
    cascade_objective = select_objective(loss, "APGD", targeted=False, adaptive=True)
    cascade_targeted = targeted_counterpart(cascade_objective)
    row = {"objective": objective, "attack_examples": len(data.x_test),
           "cascade_objectives": f"{cascade_objective},{cascade_targeted}",
           "cascade_iterations": args.aa_iter}
    for eps in EPS_256:
        result = evaluate_attack(
            model, data.x_test, data.y_test, attack_name=ATTACK, objective_name=objective,
            eps=eps / 256, eps_iter=2 / 256, num_iter=10, clip_min=data.clip_min,
            clip_max=data.clip_max, batch_size=100, seed=args.seed, progress=args.verbose > 0)
        row[f"pgd10_un_eps{eps}"] = round(result["adv_accuracy"], 4)
    row["attack_clean_accuracy"] = round(result["clean_accuracy"], 4)
    for eps in EPS_256:
        settings = EnsembleSettings(
            eps=eps / 256, clip_min=data.clip_min, clip_max=data.clip_max, n_iter=args.aa_iter,
            objective=cascade_objective, targeted_objective=cascade_targeted, seed=args.seed)
        result = evaluate_ensemble(model, data.x_test, data.y_test,
                                   members=parse_members("autoattack-lite"), settings=settings,
                                   batch_size=100, progress=args.verbose > 0)
        row[f"autoattack_un_eps{eps}"] = round(result["adv_accuracy"], 4)
    return row


def run(args) -> list:
    rows = []
    for label, loss in MODELS.items():
        print(f"== training {label} ({loss}) on {args.dataset}", flush=True)
        start = time.time()
        spec = RunSpec(args.dataset, ModelConfig(version=1, n=args.n, loss=loss, c_mm=10.0),
                       "Adam", 0.001, 50)
        result = train(RunConfig(
            run=spec, data_dir=args.data_dir, model_dir=args.out_dir, epochs=args.epochs,
            train_size=args.train_size, test_size=args.test_size, seed=args.seed,
            verbose=args.verbose, flags={"argv": sys.argv, **vars(args), "loss": loss}))
        rows.append({"model": label, "loss": loss, "epochs": result.final_epoch,
                     "train_size": args.train_size, "test_size": args.test_size,
                     "clean_accuracy": round(result.test_accuracy, 4),
                     "train_seconds": round(time.time() - start, 1),
                     **attack_row(result.model, loss, args),
                     "run_dir": str(result.run_dir)})
    return rows


def print_table(rows: list) -> None:
    columns = [(f"pgd10_un_eps{e}", f"PGD10 {e}/256") for e in EPS_256] + [
        (f"autoattack_un_eps{e}", f"AA-lite {e}/256") for e in EPS_256]
    print(f"\n{'model':<8} {'clean':>7} " + " ".join(f"{h:>14}" for _, h in columns)
          + f" {'objective':>10} {'train s':>8}")
    for r in rows:
        print(f"{r['model']:<8} {r['clean_accuracy']:>7.4f} "
              + " ".join(f"{r[k]:>14.4f}" for k, _ in columns)
              + f" {r['objective']:>10} {r['train_seconds']:>8.1f}")
    print(f"(untargeted, adaptive objectives, first {rows[0]['attack_examples']} test images; "
          f"AA-lite: APGD-CE then APGD-T, {rows[0]['cascade_iterations']} iterations each, "
          "not the full AutoAttack)", flush=True)


def main(argv=None) -> int:
    """The demo; errors raise (``call_guarded`` turns them into one line and a status)."""
    args = parse_args(argv)
    check_before_work(args)
    rows = run(args)
    print_table(rows)  # before writing: a full disk loses no measurement
    out = pathlib.Path(args.out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_set([text_item(out / "summary.csv", buf.getvalue()),
               text_item(out / "summary.json", json.dumps(rows, indent=1) + "\n")])
    print(f"(written to {out / 'summary.json'} and summary.csv)")
    return 0


if __name__ == "__main__":
    call_guarded(main)
