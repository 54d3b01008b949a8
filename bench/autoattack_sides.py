"""The two sides of :mod:`bench.autoattack_vs_reference`, each run by it as a fresh process
of its own (the timing of a side starts at launch):

    python bench/autoattack_sides.py --ours IN.npz OUT.npz        # our environment
    ../refvenv/bin/python bench/autoattack_sides.py --reference IN.npz OUT.npz

``--ours``: ``import mmt``, ``mmt.load_keras`` of the ``.keras`` file named in ``IN``,
``mmt.evaluate(..., attacks="autoattack")``. ``--reference``: the ported model (a
:mod:`bench.torch_port` spec or graph in ``IN``) and the reference
``AutoAttack(...).run_standard_evaluation``; this side imports NumPy and torch only (no
TensorFlow, nothing of this project but :mod:`bench.torch_port`). Each writes per-image
robust flags, per-member counts and times, the attack's seconds and the moment its model
was ready (``ready``, seconds since the epoch) to ``OUT``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any, Callable, Dict

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUR_MEMBERS = ("APGD-CE", "APGD-T", "FAB-T", "Square")
REF_MEMBERS = {"apgd": "apgd-ce", "apgd_targeted": "apgd-t", "fab": "fab-t",
               "square": "square"}  # the reference's attribute -> its attack name
REF_NORMS = {"linf": "Linf", "l2": "L2"}
LOGIT_TOL = 1e-4  # ported logits must agree to this, relative to max(1, max |logit|)


# ---------------------------------------------------------------- the reference side
# Runs under the reference environment: NumPy and torch only.

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
    model = reference_model(data)
    x = torch.tensor(data["x"]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y = torch.tensor(data["y"]).long()
    logits = torch.tensor(data["logits"])
    with torch.no_grad():
        logit_gap = float((model(x) - logits).abs().max())
    scale = max(float(logits.abs().max()), 1.0)
    if logit_gap > LOGIT_TOL * scale:
        raise SystemExit(f"ported model differs from the Keras one by {logit_gap:.3g} "
                         f"(logits up to {scale:.3g})")
    aa = AutoAttack(model, norm=REF_NORMS[str(data["norm"])], eps=float(data["eps"]),
                    version="standard", seed=0, device="cpu")
    stats = timed_members(aa, model, y)
    ready = time.time()
    start = time.perf_counter()
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=int(data["batch_size"]))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).numpy()
        clean = (model(x).argmax(1) == y).numpy()
    np.savez(out_file, robust=robust, clean=clean, seconds=seconds, ready=ready,
             logit_gap=logit_gap,
             logit_scale=scale, stats=json.dumps(stats), torch_version=torch.__version__)


def reference_model(data: Any) -> Any:
    """The torch model of an io file: the tiny CNN's layer list (``spec``) or a
    :mod:`bench.torch_port` graph (``graph``, weights ``g0, g1, ...`` named by
    ``graph_weights``)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from torch_port import torch_graph, torch_model

    if "graph" not in data.files:
        spec = json.loads(str(data["spec"]))
        return torch_model(spec, {k: data[k] for k in data.files if k.startswith("w")})

    names = json.loads(str(data["graph_weights"]))
    return torch_graph(json.loads(str(data["graph"])),
                       {name: data[f"g{i}"] for i, name in enumerate(names)})


# ---------------------------------------------------------------- our side

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


def run_ours(io_file: str, out_file: str) -> None:
    """``--ours`` mode: our ``autoattack`` cascade as a user runs it, in a fresh process
    (``import mmt``, ``mmt.load_keras``, ``mmt.evaluate``), on the ``.keras`` model and the
    images of ``io_file``; writes per-image robust flags, per-member counts and times and
    the moment the model was ready (the end of the start-up) to ``out_file``."""
    sys.path.insert(0, str(ROOT))
    import mmt

    data = np.load(io_file)
    model = mmt.load_keras(str(data["model_file"]))
    ready = time.time()
    times: Dict[str, float] = {}
    restore = timing_members(times)
    try:
        start = time.perf_counter()
        result = mmt.evaluate(model, data["x"], data["y"], attacks="autoattack",
                              eps=float(data["eps"]), norm=str(data["norm"]),
                              objective=str(data["objective"]),
                              targeted_objective=str(data["targeted_objective"]),
                              batch_size=int(data["batch_size"]), seed=0)
        seconds = time.perf_counter() - start
    finally:
        restore()
    np.savez(out_file, robust=result.robust, seconds=seconds, ready=ready,
             member_seconds=json.dumps(times),
             robust_accuracy_after=json.dumps({k: round(v, 6) for k, v in
                                               result.robust_accuracy_after.items()}),
             broken_by_member=json.dumps(result.record["broken_by_member"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--reference", nargs=2, metavar=("IN", "OUT"),
                      help="the reference AutoAttack (torch environment)")
    mode.add_argument("--ours", nargs=2, metavar=("IN", "OUT"), help="our cascade through mmt")
    args = parser.parse_args()
    if args.reference:
        run_reference(*args.reference)
    else:
        run_ours(*args.ours)


if __name__ == "__main__":
    main()
