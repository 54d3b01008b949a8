"""Benchmark: our AutoAttack cascade vs the reference AutoAttack (PyTorch), image by image.

One run trains the tiny Fashion-MNIST CNN of :mod:`bench.apgd_vs_art` (pixels in [0, 1],
one channel), ports its weights to PyTorch and attacks the same first ``--n`` test
images with our :func:`utils.evaluation.ensemble.evaluate_ensemble` (preset
``autoattack``: APGD-CE, APGD-T, FAB-T, Square) and with the reference
``AutoAttack(model, norm=..., eps=..., version='standard')``, for each ``--cases`` entry
(``linf:8`` is ℓ∞ ε = 8/256, ``l2:1`` ℓ2 ε = 1.0; pixels in [0, 1], so our model units
are the reference's units: ``eps_256 / 256`` on both sides). It records both robust
accuracies, the images robust for one and broken by the other, the robust accuracy
after each member and each member's wall time.

The reference runs in its own virtual environment (torch and ``pyautoattack``, the
``reference`` extra of setup.cfg), in a subprocess of this script (``--reference``
mode, which imports neither TensorFlow nor this project); the two exchange ``.npz``
files. Both sides use ``--threads`` CPU threads and seed 0.

Targets: our robust accuracy <= the reference's + 1 point, and at most one image robust
for us but broken by the reference, in every case.

    python -m venv ../refvenv && ../refvenv/bin/pip install torch pyautoattack numpy
    python bench/autoattack_vs_reference.py --ref_python=../refvenv/bin/python
    python bench/autoattack_vs_reference.py --n=20 --train_steps=50 --out=/tmp/aa.json
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUR_MEMBERS = ("APGD-CE", "APGD-T", "FAB-T", "Square")
REF_MEMBERS = {"apgd": "apgd-ce", "apgd_targeted": "apgd-t", "fab": "fab-t",
               "square": "square"}  # the reference's attribute -> its attack name
REF_NORMS = {"linf": "Linf", "l2": "L2"}
LOGIT_TOL = 1e-4  # ported logits must agree to this (absolute, logits of order 10)


def parse_case(text: str) -> Tuple[str, float]:
    """``"linf:8"`` -> ``("linf", 8 / 256)``; ``"l2:1"`` -> ``("l2", 1.0)`` (ℓ2 ε as is)."""
    norm, value = text.split(":")
    if norm not in REF_NORMS:
        raise SystemExit(f"unknown norm {norm!r} in case {text!r}; use linf:EPS_256 or l2:EPS")
    return norm, float(value) / 256 if norm == "linf" else float(value)


# ---------------------------------------------------------------- the reference side
# Runs under the reference environment: NumPy and torch only.

def torch_model(spec: List[Dict[str, Any]], weights: Dict[str, np.ndarray]):
    """The Keras model described by ``spec`` (valid-padded Conv2D, Flatten, Dense) as a
    torch module on NCHW inputs; Flatten goes through NHWC so that the Dense weights
    keep Keras' order."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(v) for k, v in weights.items()}

    class Ported(torch.nn.Module):
        def forward(self, x):
            for i, layer in enumerate(spec):
                if layer["kind"] == "conv":
                    kernel = params[f"w{i}_0"].permute(3, 2, 0, 1)  # HWIO -> OIHW
                    x = F.conv2d(x, kernel, params[f"w{i}_1"], stride=layer["stride"])
                elif layer["kind"] == "flatten":
                    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
                else:
                    x = x @ params[f"w{i}_0"] + params[f"w{i}_1"]
                if layer.get("act") == "relu":
                    x = F.relu(x)
            return x

    return Ported().eval()


def timed_members(aa: Any, model: Any, y_all: Any) -> Dict[str, Dict[str, float]]:
    """Wrap each reference attack's ``perturb`` to add its wall time and the images it
    broke (by the model, as AutoAttack counts them) to the returned dict."""
    stats: Dict[str, Dict[str, float]] = {}
    for attr, name in REF_MEMBERS.items():
        attack, entry = getattr(aa, attr), stats.setdefault(name, {"seconds": 0.0,
                                                                   "broken": 0})

        def perturb(x, y, *a, _orig=attack.perturb, _entry=entry, **kw):
            start = time.perf_counter()
            adv = _orig(x, y, *a, **kw)
            _entry["seconds"] += time.perf_counter() - start
            _entry["broken"] += int((model(adv).argmax(1) != y).sum())
            return adv

        attack.perturb = perturb
    return stats


def run_reference(io_file: str, out_file: str) -> None:
    """``--reference`` mode: the reference AutoAttack on the images of ``io_file``."""
    import torch
    from pyautoattack import AutoAttack

    data = np.load(io_file)
    torch.set_num_threads(int(data["threads"]))
    spec = json.loads(str(data["spec"]))
    model = torch_model(spec, {k: data[k] for k in data.files if k.startswith("w")})
    x = torch.tensor(data["x"]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y = torch.tensor(data["y"]).long()
    with torch.no_grad():
        logit_gap = float((model(x) - torch.tensor(data["logits"])).abs().max())
    if logit_gap > LOGIT_TOL:
        raise SystemExit(f"ported model differs from the Keras one by {logit_gap:.3g}")
    aa = AutoAttack(model, norm=REF_NORMS[str(data["norm"])], eps=float(data["eps"]),
                    version="standard", seed=0, device="cpu")
    stats = timed_members(aa, model, y)
    start = time.perf_counter()
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=int(data["batch_size"]))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).numpy()
    np.savez(out_file, robust=robust, seconds=seconds, logit_gap=logit_gap,
             stats=json.dumps(stats), torch_version=torch.__version__)


# ---------------------------------------------------------------- our side

def keras_spec(model: Any) -> Tuple[List[Dict[str, Any]], Dict[str, np.ndarray]]:
    """``(spec, weights)`` of a Sequential of valid-padded Conv2D, Flatten and Dense."""
    spec, weights = [], {}
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__
        cfg = layer.get_config()
        if kind == "Conv2D" and cfg["padding"] == "valid":
            spec.append({"kind": "conv", "stride": int(cfg["strides"][0])})
        elif kind in ("Flatten", "Dense"):
            spec.append({"kind": kind.lower()})
        else:
            raise SystemExit(f"cannot port layer {layer.name} ({kind}) to torch")
        spec[-1]["act"] = cfg.get("activation", "linear")
        for j, w in enumerate(layer.get_weights()):
            weights[f"w{i}_{j}"] = np.asarray(w, np.float32)
    return spec, weights


def timing_members(times: Dict[str, float]) -> Callable[[], None]:
    """Time each of our members (a bench-only wrapper around the registry entries);
    returns the function that restores them."""
    import dataclasses

    from utils.evaluation.members import MEMBERS

    saved = {name: MEMBERS.get(name) for name in OUR_MEMBERS}
    for name, spec in saved.items():
        def fn(model_fn, call, settings, _inner=spec.fn, _name=name):
            start = time.perf_counter()
            out = np.asarray(_inner(model_fn, call, settings))
            times[_name] = times.get(_name, 0.0) + time.perf_counter() - start
            return out

        MEMBERS._entries[name] = dataclasses.replace(spec, fn=fn)  # noqa: SLF001

    def restore() -> None:
        MEMBERS._entries.update(saved)  # noqa: SLF001

    return restore


def run_ours(model: Any, x: np.ndarray, y: np.ndarray, norm: str, eps: float,
             batch_size: int) -> Dict[str, Any]:
    """Our ``autoattack`` cascade: per-image robust flags, per-member counts and times."""
    from utils.evaluation.ensemble import evaluate_ensemble, parse_members
    from utils.evaluation.members import EnsembleSettings

    times: Dict[str, float] = {}
    restore = timing_members(times)
    settings = EnsembleSettings(eps=eps, clip_min=0.0, clip_max=1.0, norm=norm, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        state = pathlib.Path(tmp) / "state.npz"
        try:
            start = time.perf_counter()
            result = evaluate_ensemble(model, x, y, members=parse_members("autoattack"),
                                       settings=settings, batch_size=batch_size,
                                       state_file=state, progress=False)
            seconds = time.perf_counter() - start
        finally:
            restore()
        with np.load(state) as saved:
            robust = saved["adv_correct"].astype(bool)
    return dict(robust=robust, seconds=seconds, member_seconds=times,
                robust_after=result["robust_accuracy_after"],
                broken_by_member=result["broken_by_member"])


def run_case(model: Any, x: np.ndarray, y: np.ndarray, case: str,
             args: argparse.Namespace) -> Dict[str, Any]:
    """One norm/ε: ours, then the reference in its subprocess; the comparison."""
    norm, eps = parse_case(case)
    ours = run_ours(model, x, y, norm, eps, args.batch_size)
    spec, weights = keras_spec(model)
    with tempfile.TemporaryDirectory() as tmp:
        io_file, out_file = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(io_file, x=x, y=y, logits=np.asarray(model(x)), spec=json.dumps(spec),
                 norm=norm, eps=eps, threads=args.threads, batch_size=args.batch_size,
                 **weights)
        subprocess.run([args.ref_python, str(pathlib.Path(__file__).resolve()),
                        "--reference", io_file, out_file], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
        with np.load(out_file) as f:
            ref = {k: f[k] for k in f.files}
    ref_stats = json.loads(str(ref["stats"]))
    mine, theirs = ours["robust"], ref["robust"].astype(bool)
    n = len(y)
    return {
        "norm": norm, "eps": eps, "eps_256": eps * 256, "n": n,
        "robust_accuracy": {"ours": float(mine.mean()), "reference": float(theirs.mean())},
        "robust_for_us_broken_by_reference": int(np.sum(mine & ~theirs)),
        "robust_for_reference_broken_by_us": int(np.sum(theirs & ~mine)),
        "ours": {"robust_accuracy_after": ours["robust_after"],
                 "broken_by_member": ours["broken_by_member"],
                 "member_seconds": ours["member_seconds"], "seconds": ours["seconds"]},
        "reference": {"broken_by_member": {k: v["broken"] for k, v in ref_stats.items()},
                      "member_seconds": {k: v["seconds"] for k, v in ref_stats.items()},
                      "seconds": float(ref["seconds"]),
                      "logit_gap": float(ref["logit_gap"]),
                      "torch_version": str(ref["torch_version"])},
        "targets_met": bool(mine.mean() <= theirs.mean() + 0.01 + 1e-12
                            and np.sum(mine & ~theirs) <= 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", nargs=2, metavar=("IN", "OUT"),
                        help="internal: run the reference side on IN, write OUT")
    parser.add_argument("--n", type=int, default=100, help="attacked test images")
    parser.add_argument("--cases", default="linf:8,l2:1",
                        help="comma list of norm:eps (linf in /256 units, l2 as is)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--train_steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads, both sides")
    parser.add_argument("--ref_python", default=str(ROOT.parent / "refvenv" / "bin" / "python"),
                        help="python of the environment with torch and pyautoattack")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"
                                             / "autoattack_vs_reference.json"))
    parser.add_argument("--force", action="store_true", help="record on a loaded machine")
    args = parser.parse_args()
    if args.reference:
        run_reference(*args.reference)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(
        args.threads)
    sys.path.insert(0, str(ROOT))
    from bench.apgd_vs_art import fashion_01, train_tiny_cnn
    from bench.common import finish, require_idle

    load = require_idle(args.force)
    x_train, y_train, x, y, num_classes = fashion_01(20000, args.n, args.data_dir)
    model = train_tiny_cnn(x_train, y_train, num_classes, args.train_steps)
    cases = [run_case(model, x, y, c, args) for c in args.cases.split(",")]
    finish({"model": f"tiny CNN, {args.train_steps} Adam steps on 20000 Fashion-MNIST images",
            "clean_accuracy": float(np.mean(np.asarray(model(x)).argmax(-1) == y)),
            "threads": args.threads, "batch_size": args.batch_size, "cases": cases,
            "all_targets_met": all(c["targets_met"] for c in cases),
            "timing_note": "wall times measured on a machine shared with other jobs; "
                           "compare parity, not seconds"}, args.out, load)


if __name__ == "__main__":
    main()
