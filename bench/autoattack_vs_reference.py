"""Benchmark: our AutoAttack cascade vs the reference AutoAttack (PyTorch), image by image.

``--model=cnn`` (default) trains the tiny Fashion-MNIST CNN of :mod:`bench.apgd_vs_art`
(pixels in [0, 1], one channel); ``--model=resnet8-mmc`` / ``resnet8-sce`` is the demo's
ResNet-8 v1 (``scripts/demo.py``: MMC-10 or SCE head, trained once by
:mod:`bench.resnet_models` and cached in ``bench/.cache``), wrapped with its training
pixel mean (a ``PixelMean`` layer) so that it, too, takes [0, 1] pixels (3 channels).
The model is ported to PyTorch (:mod:`bench.torch_port`; logits must agree to
``LOGIT_TOL`` relative) and the same first ``--n`` test images are attacked with our
cascade (``mmt.evaluate``, preset ``autoattack``: APGD-CE,
APGD-T, FAB-T, Square) and with the reference
``AutoAttack(model, norm=..., eps=..., version='standard')``, for each ``--cases`` entry
(``linf:8`` is ℓ∞ ε = 8/256, ``l2:1`` ℓ2 ε = 1.0; pixels in [0, 1], so our model units
are the reference's units: ``eps_256 / 256`` on both sides). Our objectives are what
``advtest_iterative.py --attack_method=AutoAttack`` picks for the model's loss
(``select_objective(loss, "APGD", ...)``: ``mmc_un1`` / ``mmc_tar1`` on an MMC head,
``ce`` / ``dlr_targeted`` otherwise); a ``:plain`` case (``linf:8:plain``) is
``--adaptive=False``: ``ce`` / ``dlr_targeted``, the reference's losses. The reference
runs once per norm and ε. Each case records both robust accuracies, the images robust
for one and broken by the other, the robust accuracy after each member, each member's
wall time and the zero/NaN input-gradient warnings of our APGD-CE objective on the
clean batch (:func:`utils.evaluation.masking_checks.input_gradients`). Cases are merged
into ``--out`` by model and case.

Both sides run end to end, each in a fresh process (:mod:`bench.autoattack_sides`), as a
user runs them: ours imports ``mmt``, loads the model from a ``.keras`` file
(``mmt.load_keras``) and calls ``mmt.evaluate(..., attacks="autoattack")``; the reference
(in its own virtual environment with torch and ``pyautoattack``, the ``reference`` extra
of setup.cfg; it imports neither TensorFlow nor this project) builds the ported model and
calls ``run_standard_evaluation``. This script exchanges
``.npz`` files with them and times each process: ``process_seconds`` from launch to exit,
``startup_seconds`` from launch until the model is ready to attack (interpreter,
framework import, model load), ``seconds`` the attack itself. Both sides use
``--threads`` CPU threads and seed 0, and each runs ``--repeats`` times per case,
alternating (ours, reference, ours, ...); times are reported per repeat and as medians.

Targets: our robust accuracy <= the reference's + 1 point, and at most one image robust
for us but broken by the reference, in every case; ``:plain`` cases also: our robust
accuracy after APGD-CE <= the reference's after its APGD-CE + 1 point, and no gradient
warning (``targets_met``). Speed (``timing.speed_targets_met``): median end-to-end time
ours/reference <= 1.0 and our median start-up <= 5 s, on an idle machine.

    python -m venv ../refvenv && ../refvenv/bin/pip install torch pyautoattack numpy
    python bench/autoattack_vs_reference.py --ref_python=../refvenv/bin/python
    python bench/autoattack_vs_reference.py --model=resnet8-mmc --cases=linf:8,linf:8:plain
    python bench/autoattack_vs_reference.py --n=20 --train_steps=50 --out=/tmp/aa.json
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIDES = pathlib.Path(__file__).resolve().with_name("autoattack_sides.py")


def parse_case(text: str) -> Tuple[str, float, bool]:
    """``"linf:8"`` -> ``("linf", 8 / 256, True)``; ``"l2:1"`` -> ``("l2", 1.0, True)``
    (ℓ2 ε as is); a ``:plain`` suffix -> ``adaptive=False`` (``--adaptive=False``: ``ce``
    and ``dlr_targeted`` whatever the head; the default is the model's adaptive pair)."""
    norm, value, *mode = text.split(":")
    from bench.autoattack_sides import REF_NORMS

    try:
        eps = float(value)
    except ValueError:
        eps = float("nan")
    if norm not in REF_NORMS or mode not in ([], ["plain"]) or not eps >= 0:
        raise ValueError(f"bad case {text!r}; use linf:EPS_256 or l2:EPS (EPS >= 0), "
                         "optionally :plain")
    return norm, eps / 256 if norm == "linf" else eps, not mode


# ---------------------------------------------------------------- the parent

def timed_process(args: argparse.Namespace, mode: str, payload: Dict[str, Any],
                  python: str) -> Dict[str, Any]:
    """Run :mod:`bench.autoattack_sides` ``--<mode>`` under ``python`` on ``payload``; its
    output file's arrays plus ``process_seconds`` (launch to exit) and ``startup_seconds``
    (launch to the moment its model was ready to attack: interpreter, framework import,
    model load)."""
    with tempfile.TemporaryDirectory() as tmp:
        io_file, out_file = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(io_file, threads=args.threads, batch_size=args.batch_size, **payload)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                   TF_NUM_INTRAOP_THREADS=str(args.threads),
                   TF_NUM_INTEROP_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
        launch = time.time()
        subprocess.run([python, str(SIDES), f"--{mode}", io_file, out_file], check=True,
                       env=env)
        process_seconds = time.time() - launch
        with np.load(out_file) as f:
            out = {k: f[k] for k in f.files}
    out.update(process_seconds=process_seconds,
               startup_seconds=float(out.pop("ready")) - launch)
    return out


def run_ours_subprocess(model_file: str, x: np.ndarray, y: np.ndarray,
                        settings: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    """Our side (``autoattack_sides.run_ours``) in a fresh process of this environment."""
    out = timed_process(args, "ours", dict(model_file=model_file, x=x, y=y, **settings),
                        sys.executable)
    return {"robust": out["robust"].astype(bool), "seconds": float(out["seconds"]),
            "process_seconds": out["process_seconds"],
            "startup_seconds": out["startup_seconds"],
            "member_seconds": json.loads(str(out["member_seconds"])),
            "robust_accuracy_after": json.loads(str(out["robust_accuracy_after"])),
            "broken_by_member": json.loads(str(out["broken_by_member"]))}


def gradient_warnings(model: Any, x: np.ndarray, y: np.ndarray, objective: str) -> List[str]:
    """:func:`utils.evaluation.masking_checks.input_gradients` of ``objective`` on the
    batch (zero or NaN input gradients)."""
    from utils.attacks.objectives import OBJECTIVES
    from utils.evaluation.masking_checks import input_gradients

    onehot = np.eye(int(model.outputs[0].shape[-1]), dtype=np.float32)[y]
    return input_gradients(model, x, onehot, OBJECTIVES.get(objective).fn)


def io_payload(model: Any) -> Dict[str, Any]:
    """The model for the reference side: the tiny CNN's layer list, or a
    :mod:`bench.torch_port` graph of a functional model."""
    import keras

    from bench.torch_port import keras_graph, keras_spec

    if isinstance(model, keras.Sequential):
        spec, weights = keras_spec(model)
        return dict(spec=json.dumps(spec), **weights)

    nodes, weights = keras_graph(model)
    names = sorted(weights)
    return dict(graph=json.dumps(nodes), graph_weights=json.dumps(names),
                **{f"g{i}": weights[name] for i, name in enumerate(names)})


def run_reference_subprocess(model: Any, x: np.ndarray, y: np.ndarray, norm: str, eps: float,
                             args: argparse.Namespace) -> Dict[str, Any]:
    """The reference AutoAttack in its own environment (``autoattack_sides.run_reference``)."""
    ref = timed_process(args, "reference", dict(x=x, y=y, logits=np.asarray(model(x)),
                                                norm=norm, eps=eps, **io_payload(model)),
                        args.ref_python)
    from bench.autoattack_sides import REF_MEMBERS

    stats = json.loads(str(ref["stats"]))
    broken = {k: v["broken"] for k, v in stats.items()}
    robust, clean = int(np.sum(ref["clean"])), {}
    for name in REF_MEMBERS.values():  # the cascade's order
        robust -= broken[name]
        clean[name] = robust / len(y)
    return {"robust": ref["robust"].astype(bool), "broken_by_member": broken,
            "robust_accuracy_after": clean,
            "member_seconds": {k: v["seconds"] for k, v in stats.items()},
            "seconds": float(ref["seconds"]), "process_seconds": ref["process_seconds"],
            "startup_seconds": ref["startup_seconds"], "logit_gap": float(ref["logit_gap"]),
            "logit_scale": float(ref["logit_scale"]),
            "torch_version": str(ref["torch_version"])}


def compare(ours: Dict[str, Any], ref: Dict[str, Any]) -> Dict[str, Any]:
    """Both robust accuracies, the images where they differ, per-member details (of the
    first repeat of each side)."""
    mine, theirs = ours["robust"], ref["robust"]
    return {
        "robust_accuracy": {"ours": float(mine.mean()), "reference": float(theirs.mean())},
        "robust_for_us_broken_by_reference": int(np.sum(mine & ~theirs)),
        "robust_for_reference_broken_by_us": int(np.sum(theirs & ~mine)),
        "ours": {k: ours[k] for k in ("robust_accuracy_after", "broken_by_member",
                                      "member_seconds", "seconds", "process_seconds",
                                      "startup_seconds")},
        "reference": {k: v for k, v in ref.items() if k != "robust"},
        "targets_met": bool(mine.mean() <= theirs.mean() + 0.01 + 1e-12
                            and np.sum(mine & ~theirs) <= 1)}


TIMES = ("seconds", "process_seconds", "startup_seconds")  # attack, end to end, start-up
STARTUP_TARGET = 5.0  # seconds from launch until our model is ready to attack


def timing(ours: List[Dict[str, Any]], refs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Each repeat's attack, end-to-end and start-up seconds on both sides, their medians,
    the ratios ours/reference of the medians and the speed targets (end to end <= 1.0,
    our start-up <= :data:`STARTUP_TARGET`); ``deterministic``: every repeat of a side
    found the same robust images."""
    out: Dict[str, Any] = {"repeats": len(ours)}
    for side, runs in (("ours", ours), ("reference", refs)):
        out[side] = {key: [round(r[key], 3) for r in runs] for key in TIMES}
        out[side].update({f"median_{key}": round(statistics.median(r[key] for r in runs), 3)
                          for key in TIMES})
    out["ratio_attack"] = round(out["ours"]["median_seconds"]
                                / out["reference"]["median_seconds"], 3)
    out["ratio_end_to_end"] = round(out["ours"]["median_process_seconds"]
                                    / out["reference"]["median_process_seconds"], 3)
    out["deterministic"] = all(np.array_equal(r["robust"], runs[0]["robust"])
                               for runs in (ours, refs) for r in runs)
    out["speed_targets_met"] = bool(
        out["ratio_end_to_end"] <= 1.0
        and out["ours"]["median_startup_seconds"] <= STARTUP_TARGET)
    return out


def run_case(model: Any, model_file: str, loss: str, x: np.ndarray, y: np.ndarray,
             case: str, args: argparse.Namespace,
             references: Dict[Any, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """One norm/ε/objective choice, ``--repeats`` times: ours, then the reference (which
    runs ``--repeats`` times once per norm/ε, interleaved with the first case's runs)."""
    from utils.attacks.objectives import select_objective, targeted_counterpart

    norm, eps, adaptive = parse_case(case)
    objective = select_objective(loss, "APGD", False, adaptive)
    targeted = targeted_counterpart(objective)
    settings = dict(eps=eps, norm=norm, objective=objective, targeted_objective=targeted)
    refs = references.setdefault((norm, eps), [])
    ours = []
    for repeat in range(args.repeats):
        ours.append(run_ours_subprocess(model_file, x, y, settings, args))
        if len(refs) <= repeat:
            refs.append(run_reference_subprocess(model, x, y, norm, eps, args))
    result = {"model": args.model, "case": case, "norm": norm, "eps": eps,
              "eps_256": eps * 256, "n": len(y), "adaptive": adaptive,
              "objectives": {"APGD-CE": objective, "APGD-T": targeted},
              "gradient_warnings": gradient_warnings(model, x, y, objective),
              **compare(ours[0], refs[0]), "timing": timing(ours, refs)}
    if not adaptive:  # the first member alone, and no masked gradient
        first = (ours[0]["robust_accuracy_after"]["APGD-CE"]
                 <= refs[0]["robust_accuracy_after"]["apgd-ce"] + 0.01 + 1e-12)
        result["apgd_ce_target_met"] = bool(first and not result["gradient_warnings"])
        result["targets_met"] = result["targets_met"] and result["apgd_ce_target_met"]
    return result


Loaded = Tuple[Any, str, np.ndarray, np.ndarray, Dict[str, Any]]


def load_model(args: argparse.Namespace) -> Loaded:
    """``(pixel model, loss, x, y, description)`` of ``--model``."""
    if args.model == "cnn":
        from bench.apgd_vs_art import fashion_01, train_tiny_cnn

        x_train, y_train, x, y, num_classes = fashion_01(20000, args.n, args.data_dir)
        model = train_tiny_cnn(x_train, y_train, num_classes, args.train_steps)
        return model, "sce", x, y, {
            "description": f"tiny CNN, {args.train_steps} Adam steps on 20000 Fashion-MNIST "
                           "images"}
    from bench.resnet_models import pixel_resnet

    loss = args.model.split("-")[1]
    model, x, y, info = pixel_resnet(loss, epochs=args.epochs, train_size=args.train_size,
                                     n_test=args.n, data_dir=args.data_dir)
    info["description"] = (
        f"ResNet-8 v1 {loss.upper()}{'-10' if loss == 'mmc' else ''} (scripts/demo.py's "
        f"model and training: Adam 1e-3, batch 50, {args.epochs} epochs on {args.train_size} "
        "Fashion-MNIST images), PixelMean layer in front: [0, 1] pixels, 3 channels")
    return model, loss, x, y, info


def case_name(case: Dict[str, Any]) -> str:
    """``linf:8`` / ``l2:1`` of a recorded case of the first layout."""
    return f"{case['norm']}:{case['eps_256'] if case['norm'] == 'linf' else case['eps']:g}"


def merge(out: pathlib.Path, run: Dict[str, Any]) -> Dict[str, Any]:
    """The results file with this run's model entry (the latest run's provenance, every
    run's command) and cases replacing those of the same model and case (a file of the
    single-model layout is read as model ``cnn``)."""
    old = json.loads(out.read_text()) if out.exists() else {"models": {}, "cases": []}
    if "models" not in old:  # the first layout: one tiny CNN run at the top level
        cases = [dict(c, model="cnn", case=case_name(c), adaptive=True)
                 for c in old.pop("cases")]
        old = {"models": {"cnn": dict(old, description=old.pop("model"))}, "cases": cases}
    for entry in old["models"].values():
        entry.pop("all_targets_met", None)  # a file-level field (first layout)
    keys = {(c["model"], c["case"]) for c in run["cases"]}
    before = old["models"].get(run["model"], {})
    commands = before.get("commands", [before["command"]] if "command" in before else [])
    old["models"][run["model"]] = dict(
        {k: v for k, v in run.items() if k not in ("cases", "model")},
        commands=list(dict.fromkeys(commands + [run["command"]])))
    old["cases"] = [c for c in old["cases"] if (c["model"], c["case"]) not in keys] \
        + run["cases"]
    old["all_targets_met"] = all(c["targets_met"] for c in old["cases"])
    return old


def record(run: Dict[str, Any], out: pathlib.Path, load: float) -> None:
    """Provenance into ``run`` (as :func:`bench.common.finish`), merged into ``out``."""
    from bench.common import load_average
    from utils.fileio import atomic_write_text
    from utils.results import package_versions

    run.update(versions=package_versions(), load_average_at_start=round(load, 2),
               load_average_at_end=round(load_average(), 2), cores=os.cpu_count(),
               command=" ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]))
    merged = merge(out, run)
    print(json.dumps(run, indent=1))
    atomic_write_text(out, json.dumps(merged, indent=1) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each side per case (times: the median)")
    parser.add_argument("--model", default="cnn", choices=("cnn", "resnet8-mmc", "resnet8-sce"))
    parser.add_argument("--n", type=int, default=100, help="attacked test images")
    parser.add_argument("--cases", default="linf:8,l2:1",
                        help="comma list of norm:eps[:plain] (linf in /256 units, l2 as is; "
                             "plain: --adaptive=False objectives)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--train_steps", type=int, default=400, help="cnn: Adam steps")
    parser.add_argument("--epochs", type=int, default=3, help="resnet8: training epochs")
    parser.add_argument("--train_size", type=int, default=10000, help="resnet8: images")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads, both sides")
    parser.add_argument("--ref_python", default=str(ROOT.parent / "refvenv" / "bin" / "python"),
                        help="python of the environment with torch and pyautoattack")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"
                                             / "autoattack_vs_reference.json"))
    parser.add_argument("--force", action="store_true", help="record on a loaded machine")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(
        args.threads)
    sys.path.insert(0, str(ROOT))
    from bench.common import require_idle

    try:  # every case checked before a model is trained
        for case in args.cases.split(","):
            parse_case(case)
        if args.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    load = require_idle(args.force)
    model, loss, x, y, info = load_model(args)
    references: Dict[Any, List[Dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_file = os.path.join(tmp, "model.keras")
        model.save(model_file)
        cases = [run_case(model, model_file, loss, x, y, c, args, references)
                 for c in args.cases.split(",")]
    record({"model": args.model, **info, "loss": loss,
            "clean_accuracy": float(np.mean(np.asarray(model(x)).argmax(-1) == y)),
            "threads": args.threads, "batch_size": args.batch_size, "repeats": args.repeats,
            "cases": cases,
            "timing_note": "--force: times may come from a loaded machine, compare parity"
            if args.force else "load below the core count at start"}, pathlib.Path(args.out), load)


if __name__ == "__main__":
    main()
