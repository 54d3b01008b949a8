"""Benchmark: our compiled MMC training step vs the same network's step in PyTorch.

ResNet v1 and v2 (``--n``, default 5: ResNet-32 v1, ResNet-47 v2) with the MMC head, batch
50 of CIFAR-shaped random data (:func:`bench.train_step.random_data`), momentum SGD at
0.01 with the conv kernels' L2 penalty. Our side is the step ``train_models.py`` runs
(:func:`bench.train_step.make_trainer`, the real :func:`build_trainer` step fed by its
distributed dataset); the PyTorch side is :mod:`bench.torch_resnet`, a layer-for-layer
copy with the same parameter count (checked) and the same centers and data (our side
writes them). Each framework runs in its own subprocess with ``--threads`` intra-op
threads and one inter-op thread (``TF_NUM_INTRAOP_THREADS`` / ``torch.set_num_threads``);
after compilation and warm-up the workers take turns, ``--rounds`` rounds of ``--steps``
timed steps each (A/B/A/B), so drift in the machine's speed hits both alike. The record
holds the per-round step times, the medians and the ratio ours/PyTorch per version.

``--extras`` adds sides to the same rounds, to explain a gap: ``floor`` (our bare compiled
forward+backward+apply, :func:`bench.train_step.floor_step`, in our worker), ``xla``
(our step with ``jit_compile``), ``no_onednn`` (ours with ``TF_ENABLE_ONEDNN_OPTS=0``),
``interop`` (ours with ``--threads`` inter-op threads, TensorFlow's default, instead of one),
``channels_last`` (PyTorch in NHWC memory format, the layout ours uses), ``omp_passive``
(PyTorch with ``OMP_WAIT_POLICY=PASSIVE``: its OpenMP threads sleep instead of spinning at
barriers; on a machine shared with other jobs spinning threads lose their cores and the
default step can be several times slower, so compare under load only with this side).
Refuses to write on a loaded machine (``--force``).

    python bench/train_step_vs_torch.py --extras=floor,channels_last
    python bench/train_step_vs_torch.py --steps=3 --rounds=2 --force --out=/tmp/vs.json
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
from typing import Any, Dict, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import finish, load_average, require_idle  # noqa: E402

MARK = "@@ "  # bench.torch_resnet.MARK: prefixes each JSON reply on a worker's stdout
EXTRAS = ("floor", "xla", "no_onednn", "interop", "channels_last", "omp_passive")
DEFAULT_TORCH_PYTHON = os.environ.get("TORCH_PYTHON", "/work/refvenv/bin/python")


class Worker:
    """One framework's subprocess: ``request`` sends a JSON line, returns its JSON reply."""

    def __init__(self, argv: List[str], env: Dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, text=True, bufsize=1,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ready = self._read()

    def _read(self) -> Dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        raise SystemExit(f"worker {' '.join(self.argv[:2])} ended (status "
                         f"{self.proc.wait()}) before replying; see its stderr above")

    def request(self, **fields: Any) -> Dict[str, Any]:
        self.proc.stdin.write(json.dumps(fields) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """EOF on its stdin ends the worker; one that does not end in a minute is killed."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- our side (TensorFlow)

def reply(obj: Dict[str, Any]) -> None:
    """A worker's answer on stdout (as :func:`bench.torch_resnet.reply`)."""
    print(MARK + json.dumps(obj), flush=True)


def tf_worker(cfg: Dict[str, Any]) -> None:
    """``--tf_worker`` mode: our MMC trainer for ``cfg`` (version, n, batch_size, threads,
    jit, floor, data, warmup); writes data and centers to ``cfg["data"]`` if set, then
    times ``{"steps": k, "what": "step" | "floor"}`` requests until EOF."""
    # Imported here: the orchestrating process stays free of TensorFlow.
    from utils.tf_env import tensorflow_defaults
    tensorflow_defaults()  # train_models.py's settings (the CPU allocator), before TF loads
    import numpy as np
    import tensorflow as tf

    from bench.train_step import floor_step, make_trainer, random_data, time_floor, time_steps
    from utils.models.classifier import head_layer
    from utils.training.distribute import make_strategy

    tf.config.threading.set_intra_op_parallelism_threads(int(cfg["threads"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(cfg.get("inter_op", 1)))
    batch = int(cfg["batch_size"])
    strategy = make_strategy("auto")
    trainer = make_trainer("mmc", strategy, batch, int(cfg["n"]), "off",
                           version=int(cfg["version"]), jit_compile=bool(cfg["jit"]))
    x, y = random_data(batch)
    if cfg.get("data"):
        np.savez(cfg["data"], x=x, y=y, centers=head_layer(trainer.model).centers.numpy())
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    batches = [(tf.constant(x[i:i + batch]), tf.constant(y[i:i + batch]))
               for i in range(0, len(x), batch)]
    timers = {"step": lambda k: time_steps(trainer, iterator, k)}
    if cfg.get("floor"):
        floor = floor_step(trainer)
        timers["floor"] = lambda k: time_floor(floor, batches, k)
    start = time.perf_counter()
    for timer in timers.values():
        timer(int(cfg["warmup"]))
    model = trainer.model
    reply({"ready": True, "warmup_s": time.perf_counter() - start, "params": {
        "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "non_trainable": int(sum(np.prod(w.shape) for w in model.non_trainable_weights))},
        "tensorflow": tf.__version__, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()})
    for line in sys.stdin:
        request = json.loads(line)
        reply({"times": timers[request.get("what", "step")](int(request["steps"]))})


# ---------------------------------------------------------------- the orchestrator

def child_env(threads: int, **extra: str) -> Dict[str, str]:
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def start_sides(version: int, args: argparse.Namespace, data: str
                ) -> Tuple[Dict[str, Tuple[Worker, str]], List[Worker]]:
    """The workers of one version and the sides they time: ``{side: (worker, what)}``.
    Ours starts first (it writes the data and centers the PyTorch side reads)."""
    base = {"version": version, "n": args.n, "batch_size": args.batch_size,
            "threads": args.threads, "warmup": args.warmup}
    me = [sys.executable, str(pathlib.Path(__file__).resolve()), "--tf_worker"]
    env = child_env(args.threads)

    started: List[Worker] = []

    def start(argv: List[str], worker_env: Dict[str, str]) -> Worker:
        try:
            started.append(Worker(argv, worker_env))
        except BaseException:
            for worker in started:
                worker.close()
            raise
        return started[-1]

    def tf_side(extra_env: Optional[Dict[str, str]] = None, **cfg: Any) -> Worker:
        return start(me + [json.dumps({**base, "jit": False, **cfg})],
                     dict(env, **(extra_env or {})))

    def torch_side(extra_env: Optional[Dict[str, str]] = None, **cfg: Any) -> Worker:
        return start([args.torch_python, str(ROOT / "bench" / "torch_resnet.py"),
                      json.dumps({**base, "data": data, **cfg})], dict(env, **(extra_env or {})))

    ours = tf_side(data=data, floor="floor" in args.extras)
    sides = {"ours": (ours, "step"), "torch": (torch_side(), "step")}
    if "floor" in args.extras:
        sides["ours_floor"] = (ours, "floor")
    if "xla" in args.extras:
        sides["ours_xla"] = (tf_side(jit=True), "step")
    if "no_onednn" in args.extras:
        sides["ours_no_onednn"] = (tf_side({"TF_ENABLE_ONEDNN_OPTS": "0"}), "step")
    if "interop" in args.extras:
        sides["ours_interop"] = (tf_side({"TF_NUM_INTEROP_THREADS": str(args.threads)},
                                         inter_op=args.threads), "step")
    if "channels_last" in args.extras:
        sides["torch_channels_last"] = (torch_side(channels_last=True), "step")
    if "omp_passive" in args.extras:
        sides["torch_omp_passive"] = (torch_side({"OMP_WAIT_POLICY": "PASSIVE"}), "step")
    return sides, started


def check_params(sides: Dict[str, Tuple[Worker, str]]) -> Dict[str, int]:
    """Our parameter counts, after checking that every worker's equal them."""
    ours = sides["ours"][0].ready["params"]
    for name, (worker, _) in sides.items():
        if worker.ready["params"] != ours:
            raise SystemExit(f"{name} has parameters {worker.ready['params']}, ours {ours}: "
                             "not the same network")
    return ours


def compare(version: int, args: argparse.Namespace, tmp: str) -> Dict[str, Any]:
    """Rounds of alternating sides for one ResNet version; its part of the record."""
    sides, workers = start_sides(version, args, os.path.join(tmp, f"v{version}.npz"))
    try:
        params = check_params(sides)
        rounds: Dict[str, List[List[float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, (worker, what) in sides.items():
                rounds[name].append(worker.request(steps=args.steps, what=what)["times"])
                time.sleep(args.pause_s)  # let the threads that spin after work go idle
    finally:
        for worker in workers:
            worker.close()
    return summarise(version, args, params, rounds,
                     {name: worker.ready for name, (worker, _) in sides.items()})


def summarise(version: int, args: argparse.Namespace, params: Dict[str, int],
              rounds: Dict[str, List[List[float]]], ready: Dict[str, Any]) -> Dict[str, Any]:
    med = {name: statistics.median([t for r in times for t in r])
           for name, times in rounds.items()}
    depth = (6 if version == 1 else 9) * args.n + 2
    return {
        "model": f"ResNet-{depth} v{version} (n={args.n}) + MMC head, 10 classes",
        "params": params,
        "per_round_step_s": rounds,
        "round_median_step_s": {name: [statistics.median(r) for r in times]
                                for name, times in rounds.items()},
        "median_step_s": med,
        "images_per_s": {name: args.batch_size / m for name, m in med.items()},
        "ratio_ours_over_torch": med["ours"] / med["torch"],
        "ratio_over_torch": {name: m / med["torch"] for name, m in med.items()},
        "workers": ready,
    }


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--n", type=int, default=5, help="blocks per stage (v1: 6n+2 layers, "
                        "v2: 9n+2)")
    parser.add_argument("--versions", default="1,2", help="ResNet versions, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side and round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads on both sides (default: the core count)")
    parser.add_argument("--pause_s", type=float, default=1.0, help="idle seconds between sides")
    parser.add_argument("--extras", default="", help=f"extra sides: {','.join(EXTRAS)}")
    parser.add_argument("--torch_python", default=DEFAULT_TORCH_PYTHON,
                        help="a Python with torch and NumPy (env TORCH_PYTHON)")
    parser.add_argument("--force", action="store_true",
                        help="write results even when the machine is loaded")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" /
                                             "train_step_vs_torch.json"))
    parser.add_argument("--tf_worker", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.extras = [e for e in args.extras.split(",") if e]
    unknown = set(args.extras) - set(EXTRAS)
    if unknown:
        parser.error(f"unknown --extras {sorted(unknown)}; choose from {', '.join(EXTRAS)}")
    args.versions = [int(v) for v in args.versions.split(",")]
    if not set(args.versions) <= {1, 2}:
        parser.error("--versions takes 1 and/or 2")
    return args


def main() -> None:
    args = parse_args()
    if args.tf_worker:
        tf_worker(json.loads(args.tf_worker))
        return
    load = require_idle(args.force)
    result: Dict[str, Any] = {
        "benchmark": "train_step_vs_torch",
        "batch_size": args.batch_size, "threads": args.threads, "inter_op_threads": 1,
        "steps_per_round": args.steps, "rounds": args.rounds, "warmup_steps": args.warmup,
        "extras": args.extras, "torch_python": args.torch_python,
        "measured_under_load": load > (os.cpu_count() or 1),
        "data": "CIFAR-shaped random batches (bench.train_step.random_data), 4 cycled",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for version in args.versions:
            result[f"v{version}"] = compare(version, args, tmp)
            print(f"v{version}: ours/torch = {result[f'v{version}']['ratio_ours_over_torch']:.3f}"
                  f" (load {load_average():.2f})", file=sys.stderr)
    finish(result, args.out, load)


if __name__ == "__main__":
    main()
