"""TensorFlow's process settings, set before its first use: one place for every entry
point (scripts, benchmarks, the tests' ``conftest``). Loads nothing heavy.

``TF_CPU_ALLOCATOR_USE_BFC=true``: TensorFlow's pooling (BFC) allocator for CPU tensors
instead of ``malloc``. Measured on 2 CPU cores (ResNet-8 v1, batch 20, one thread): once a
``tf.distribute`` dataset iterator exists in a process (``train_models.py`` always makes
one), ``malloc`` maps and unmaps every large temporary buffer anew, and every later op in
that process runs about 2.4x slower (a bare training step 50 -> 125 ms, mostly kernel
time zeroing fresh pages); with the pool, 52 ms, and an epoch 2.7 s -> 1.3 s with
bit-identical weights. Memory grows to the peak use and is kept (no limit below TF's
64 GB default). A value already in the environment wins.
"""
from __future__ import annotations

import os

DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_CPU_ALLOCATOR_USE_BFC": "true"}


def tensorflow_defaults() -> None:
    """Put :data:`DEFAULTS` into ``os.environ`` where unset (before TensorFlow allocates
    its first tensor, which is when it reads them)."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
