"""What every benchmark shares: the load check, the gradient floor, provenance, the write.

    load = require_idle(args.force)       # at start: refuse on a loaded machine
    floor = gradient_floor(model, objective, k)   # k forward+backward passes, compiled
    finish(result, args.out, load)        # adds versions, command, loads; writes atomically

A benchmark's absolute times mean nothing on a shared machine; every benchmark therefore
times, in the same run, the floor of the same work (``k`` forward+backward passes of the
same batch for an attack of ``k`` gradient steps; the bare forward+backward+apply for a
training step) and reports the ratio.
"""
from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.fileio import atomic_write_text  # noqa: E402
from utils.results import package_versions  # noqa: E402

LOADED_EXIT = 3  # exit status when results are refused because the machine is loaded


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def require_idle(force: bool) -> float:
    """Exit with :data:`LOADED_EXIT` and one line when the 1-minute load average exceeds
    the core count (other jobs would be timed too), unless ``force``; returns the load."""
    load, cores = load_average(), os.cpu_count() or 1
    if load > cores and not force:
        print(f"error: load average {load:.2f} exceeds the {cores} cores: other jobs would be "
              "timed too; rerun on an idle machine (or pass --force to record anyway)",
              file=sys.stderr)
        sys.exit(LOADED_EXIT)
    return load


def gradient_floor(model_fn: Callable, objective: Callable, k: int) -> Callable:
    """A compiled ``(x, labels_onehot) -> x_k``: exactly ``k`` forward and backward passes
    of ``objective(model_fn(x), labels)``, pass ``i + 1`` taken at
    ``x_{i+1} = x_i + 1e-3 * sign(grad_i)``, nothing else. An attack of ``k`` gradient
    steps cannot be faster.

    Each pass must depend on the one before, as in any iterative attack: with the same
    ``x`` in every pass (the first version of this floor) the graph optimiser hoists the
    loop-invariant forward pass out of the loop and times one forward and ``k`` backward
    passes, about ``(1 + 2k) / 3k`` of the real floor (0.71 at k = 10 on a ResNet-32,
    measured on 2 CPU cores; see the README's benchmark section)."""
    import tensorflow as tf

    @tf.function
    def floor(x: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
        def body(i, xi):
            with tf.GradientTape() as tape:
                tape.watch(xi)
                loss = tf.reduce_sum(objective(model_fn(xi), onehot))
            return i + 1, xi + 1e-3 * tf.sign(tape.gradient(loss, xi))

        return tf.while_loop(lambda i, _: i < k, body, (tf.constant(0), x))[1]

    return floor


def separate_passes(model_fn: Callable, objective: Callable, k: int) -> Callable:
    """``(x, labels_onehot) -> None``: ``k`` separately compiled forward+backward calls
    (host sync after each); an independent check of :func:`gradient_floor` (it should be
    no slower than this)."""
    import tensorflow as tf

    @tf.function
    def one(x: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(objective(model_fn(x), onehot))
        return tape.gradient(loss, x)

    def run(x: tf.Tensor, onehot: tf.Tensor) -> None:
        for _ in range(k):
            one(x, onehot).numpy()

    return run


def interleaved_times(runners: Dict[str, Callable[[int], None]], rounds: int,
                      reps: int) -> Dict[str, List[float]]:
    """Seconds per call of each runner (``run(seed)``, blocking), alternating runner by
    runner so that drift in the machine's speed hits all alike."""
    times: Dict[str, List[float]] = {k: [] for k in runners}
    for r in range(rounds):
        for i in range(reps):
            for name, run in runners.items():
                start = time.perf_counter()
                run(1000 * r + i)
                times[name].append(time.perf_counter() - start)
    return times


def medians(times: Dict[str, List[float]]) -> Dict[str, float]:
    return {k: statistics.median(v) for k, v in times.items()}


def finish(result: Dict[str, Any], out: "str | pathlib.Path",
           load_at_start: Optional[float] = None) -> None:
    """Record versions, the command line and the load averages in ``result``, print it and
    write it to ``out``. The load is checked at the start only (:func:`require_idle`): at
    the end it includes the benchmark's own threads (about one per core), so it is
    recorded, not judged."""
    result["versions"] = package_versions()
    result["command"] = " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    result["load_average_at_start"] = (None if load_at_start is None
                                       else round(load_at_start, 2))
    result["load_average_at_end"] = round(load_average(), 2)
    result["cores"] = os.cpu_count()
    print(json.dumps(result, indent=1))
    atomic_write_text(pathlib.Path(out), json.dumps(result, indent=1) + "\n")
