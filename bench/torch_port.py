"""A Keras functional model, layer for layer, as a PyTorch module (for the reference side).

:func:`keras_graph` (our side, Keras) flattens a functional model, nested functional
models included, into a JSON-able list of nodes ``{"name", "kind", "inputs", ...}`` in
execution order plus a dict of float32 weights ``"<node>:<j>"``; :func:`torch_graph`
(the reference side: NumPy and torch only, no TensorFlow) runs that list on NCHW inputs.

Supported layers: ``InputLayer``, ``PixelMean`` (``x - mean``; ``x + mean``),
``Conv2D`` (``valid``, or ``same`` with TensorFlow's asymmetric padding: the extra row
and column go after, as ``F.pad``), ``BatchNormalization`` (inference: moving statistics
and the layer's own ``epsilon``, Keras' 1e-3, not torch's 1e-5), ``Activation``
(``relu``, ``linear``), ``Add``, ``GlobalAveragePooling2D``, ``Flatten`` (through NHWC,
so a following ``Dense`` keeps Keras' order), ``Dense`` (``relu``/``linear``) and
``MMCLayer`` (``-sum((z - mu)^2)`` over the feature axis, as
``keras_layers.squared_distances``: difference first, no ``|z|^2 - 2 z.mu + |mu|^2``).

    nodes, weights = keras_graph(model)            # our side
    module = torch_graph(nodes, weights)           # reference side; module(x_nchw) -> logits
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import numpy as np

Node = Dict[str, Any]
_ACTIVATIONS = ("relu", "linear")


# ---------------------------------------------------------------- our side (Keras)

def _history(arg: Any) -> List[str]:
    """The layer names a serialized call argument refers to (a tensor, list or tuple)."""
    if isinstance(arg, (list, tuple)):
        return [name for item in arg for name in _history(item)]
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [arg["config"]["keras_history"][0]]
    return []


def _layer_node(layer: Any, kind: str, cfg: Dict[str, Any]) -> Node:
    """The settings of one supported leaf layer (``ValueError`` for anything else)."""
    act = cfg.get("activation", "linear")
    if act not in _ACTIVATIONS:
        raise ValueError(f"cannot port activation {act!r} of {layer.name}")
    if kind == "Conv2D":
        if cfg["padding"] not in ("same", "valid") or tuple(cfg["dilation_rate"]) != (1, 1) \
                or cfg.get("groups", 1) != 1 or cfg["data_format"] != "channels_last":
            raise ValueError(f"cannot port the settings of {layer.name}: {cfg}")
        return {"strides": list(cfg["strides"]), "padding": cfg["padding"],
                "kernel": list(cfg["kernel_size"]), "act": act}
    if kind == "BatchNormalization":
        if cfg["axis"] not in (-1, 3, [-1], [3]):
            raise ValueError(f"cannot port BatchNormalization axis {cfg['axis']}")
        return {"epsilon": float(cfg["epsilon"]), "center": bool(cfg["center"]),
                "scale": bool(cfg["scale"])}
    if kind == "MMCLayer" and cfg["normalize_output"]:
        raise ValueError(f"{layer.name} outputs softmax probabilities; port the logits")
    if kind == "PixelMean":
        return {"subtract": bool(cfg["subtract"])}
    if kind in ("Activation", "Dense", "Add", "GlobalAveragePooling2D", "Flatten", "MMCLayer"):
        return {"act": act}
    raise ValueError(f"cannot port layer {layer.name} ({kind}) to torch")


def _flatten(model: Any, prefix: str, inputs: List[str], nodes: List[Node],
             weights: Dict[str, np.ndarray]) -> str:
    """Append ``model``'s layers (named ``prefix + name``) to ``nodes``, its inputs bound
    to the node names ``inputs``; returns the name of its output node."""
    config = model.get_config()
    given = config["input_layers"]
    given = given if isinstance(given[0], (list, tuple)) else [given]  # one input: flat
    if len(given) != len(inputs):
        raise ValueError(f"{model.name} takes {len(given)} inputs, called with {len(inputs)}")
    scope = {entry[0]: name for entry, name in zip(given, inputs)}
    for entry in config["layers"]:
        name, kind = entry["config"]["name"], entry["class_name"]
        if kind == "InputLayer":
            continue
        if len(entry["inbound_nodes"]) != 1:
            raise ValueError(f"{name} is called {len(entry['inbound_nodes'])} times")
        sources = [scope[s] for s in _history(entry["inbound_nodes"][0]["args"])]
        layer = model.get_layer(name)
        if kind in ("Functional", "Model"):
            scope[name] = _flatten(layer, f"{prefix}{name}/", sources, nodes, weights)
            continue
        node = {"name": prefix + name, "kind": kind, "inputs": sources,
                **_layer_node(layer, kind, entry["config"])}
        for j, w in enumerate(layer.get_weights()):
            weights[f"{node['name']}:{j}"] = np.asarray(w, np.float32)
        nodes.append(node)
        scope[name] = node["name"]
    outputs = config["output_layers"]
    return scope[outputs[0] if isinstance(outputs[0], str) else outputs[0][0]]


def keras_graph(model: Any) -> Tuple[List[Node], Dict[str, np.ndarray]]:
    """``(nodes, weights)`` of a one-input, one-output functional ``model``; the first
    node reads ``"input"``, the last one is the output."""
    nodes: List[Node] = []
    weights: Dict[str, np.ndarray] = {}
    out = _flatten(model, "", ["input"], nodes, weights)
    if nodes[-1]["name"] != out:
        raise ValueError(f"the output {out} is not the last node")
    return nodes, weights


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


# ---------------------------------------------------------------- reference side (torch)

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


def _same_pad(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow's ``same`` padding of one axis: ``(before, after)``, the odd one after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x: Any, node: Node, w: List[Any]) -> Any:
    import torch.nn.functional as F

    kernel = w[0].permute(3, 2, 0, 1)  # HWIO -> OIHW
    if node["padding"] == "same":
        (top, bottom), (left, right) = (
            _same_pad(x.shape[2 + a], node["kernel"][a], node["strides"][a]) for a in (0, 1))
        x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, kernel, w[1] if len(w) > 1 else None, stride=tuple(node["strides"]))


def _batch_norm(x: Any, node: Node, w: List[Any]) -> Any:
    """Keras' inference arithmetic: ``x * inv + (beta - mean * inv)``,
    ``inv = gamma / sqrt(var + epsilon)``."""
    import torch

    it = iter(w)
    gamma = next(it) if node["scale"] else None
    beta = next(it) if node["center"] else None
    mean, var = next(it), next(it)
    inv = torch.rsqrt(var + node["epsilon"])
    if gamma is not None:
        inv = inv * gamma
    shift = -mean * inv if beta is None else beta - mean * inv
    return x * inv.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def _apply(x: List[Any], node: Node, w: List[Any]) -> Any:
    """One node on its input tensors ``x`` (NCHW images, ``(batch, d)`` vectors)."""
    kind, first = node["kind"], x[0]
    if kind == "PixelMean":
        mean = w[0].permute(2, 0, 1).unsqueeze(0)  # HWC -> 1CHW
        out = first - mean if node["subtract"] else first + mean
    elif kind == "Conv2D":
        out = _conv(first, node, w)
    elif kind == "BatchNormalization":
        out = _batch_norm(first, node, w)
    elif kind == "Add":
        out = sum(x[1:], first)
    elif kind == "GlobalAveragePooling2D":
        out = first.mean(dim=(2, 3))
    elif kind == "Flatten":
        out = first.permute(0, 2, 3, 1).reshape(first.shape[0], -1)
    elif kind == "Dense":
        out = first @ w[0] + w[1] if len(w) > 1 else first @ w[0]
    elif kind == "MMCLayer":
        out = -((first.unsqueeze(1) - w[0].unsqueeze(0)) ** 2).sum(-1)
    else:  # Activation
        out = first
    return out.clamp_min(0) if node.get("act") == "relu" else out


def torch_graph(nodes: List[Node], weights: Dict[str, np.ndarray]) -> Any:
    """The model of :func:`keras_graph`'s output as a torch module in eval mode:
    ``(batch, C, H, W)`` float32 -> the last node's output."""
    import torch

    params = {k: torch.tensor(np.asarray(v, np.float32)) for k, v in weights.items()}
    by_node = {n["name"]: [params[f"{n['name']}:{j}"] for j in range(_count(params, n))]
               for n in nodes}

    class Ported(torch.nn.Module):
        def forward(self, x):
            values = {"input": x}
            for node in nodes:
                values[node["name"]] = _apply([values[s] for s in node["inputs"]], node,
                                              by_node[node["name"]])
            return values[nodes[-1]["name"]]

    return Ported().eval()


def _count(params: Dict[str, Any], node: Node) -> int:
    j = 0
    while f"{node['name']}:{j}" in params:
        j += 1
    return j
