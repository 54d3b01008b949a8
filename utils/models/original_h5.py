"""Load the original repository's Keras 2 checkpoints (``model.NNN.h5``) into our classifier.

``train.py`` / ``advtrain.py`` of P2333/Max-Mahalanobis-Training save
``ModelCheckpoint(save_weights_only=True)`` files of one flat Keras 2 model: the ResNet of
its ``utils/model.py``, the ``Dense(num_dims)`` feature layer and, for SCE only, the
``Dense(num_classes)`` logits (its MMC / MMLDA model ends in a weightless ``Lambda`` on the
features; the centers are not in the file). Keras 2 stores the layers in its functional
order (by depth from the output, then traversal order); our backbone, a flat functional
model of the same topology, lists its layers in that same order. Layers are matched by
that order and checked by weight count and shapes, never by Keras' auto-generated names.

    load_original_weights(model, cfg, pathlib.Path("run/model.180.h5"))
"""
from __future__ import annotations

import pathlib
from typing import List, Tuple

import keras
import numpy as np

from utils.errors import UsageError
from utils.loss_specs import LOSSES
from utils.models.classifier import feature_model, head_layer
from utils.runs.model_config import ModelConfig
import h5py

#: Heads the original's checkpoints can hold: SCE (dense), MMC and MMLDA (mmc).
ORIGINAL_HEADS = ("dense", "mmc")


def original_layer_order(model: keras.Model, cfg: ModelConfig) -> List[keras.layers.Layer]:
    """Our layers with weights, in the order the original's Keras 2 file lists them."""
    head = LOSSES.get(cfg.loss).head
    if head not in ORIGINAL_HEADS or cfg.loss not in ("sce", "mmc", "mmlda"):
        raise UsageError(f"the original repository's checkpoints hold SCE, MMC or MMLDA "
                         f"models, not --loss={cfg.loss}")
    layers = [layer for layer in feature_model(model).layers if layer.weights]
    if head == "dense":
        layers.append(head_layer(model))
    return layers


def read_original_h5(path: pathlib.Path) -> List[Tuple[str, List[np.ndarray]]]:
    """``[(layer name, [arrays])]`` of the layers with weights, in the file's order.

    Accepts ``save_weights`` files and full ``model.save`` files (``model_weights``).
    UsageError for a file that is not readable HDF5 (e.g. truncated).
    """
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            out = []
            for raw in group.attrs["layer_names"]:
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                layer = group[name]
                weights = [w.decode() if isinstance(w, bytes) else str(w)
                           for w in layer.attrs.get("weight_names", [])]
                if weights:
                    out.append((name, [np.asarray(layer[w]) for w in weights]))
            return out
    except (OSError, KeyError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot read {path} as a Keras 2 HDF5 weights file ({first[:120]}); "
                         "it is truncated or not the original's checkpoint") from None


def _first_mismatch(ours: List[keras.layers.Layer],
                    theirs: List[Tuple[str, List[np.ndarray]]]) -> str:
    """'' when every layer's weight shapes agree, else the first disagreement."""
    for i, (layer, (name, arrays)) in enumerate(zip(ours, theirs)):
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            return (f"layer {i + 1} ('{name}' in the file) has weight shapes {got}, our "
                    f"'{layer.name}' expects {want}")
    if len(ours) != len(theirs):
        i = min(len(ours), len(theirs))
        what = (f"file ends after layer {i}, our model continues with '{ours[i].name}'"
                if i < len(ours) else f"file has more layers ('{theirs[i][0]}' is extra)")
        return (f"{len(theirs)} layers with weights in the file, {len(ours)} in our model: "
                + what)
    return ""


def load_original_weights(model: keras.Model, cfg: ModelConfig, path: pathlib.Path) -> None:
    """Set ``model``'s weights from the original's ``model.NNN.h5`` at ``path``.

    Raises:
        UsageError: one line naming the first layer whose count or shapes disagree
            (another architecture or flags), or an unreadable / truncated file.
    """
    ours = original_layer_order(model, cfg)
    theirs = read_original_h5(pathlib.Path(path))
    mismatch = _first_mismatch(ours, theirs)
    if mismatch:
        raise UsageError(f"{path} does not match the model the flags describe: {mismatch}; "
                         "pass the flags it was trained with (--version, --n, --use_BN, "
                         "--use_dense, --use_MMLDA, --feature_dim)")
    for layer, (_, arrays) in zip(ours, theirs):
        layer.set_weights(arrays)
