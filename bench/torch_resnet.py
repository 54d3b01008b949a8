"""Our ResNet v1/v2 with the MMC head, and its training step, in PyTorch (benchmark only).

The PyTorch side of :mod:`bench.train_step_vs_torch`. It mirrors
:mod:`utils.models.resnet` (the keras-team CIFAR-10 ResNet of the original MMC code) layer
for layer: the same convolutions (with biases), BatchNormalization where ours has it
(Keras' epsilon 1e-3 and momentum 0.99), ReLU or LeakyReLU(0.2), 1x1 projections on the
shortcut, global average pooling, ``Dense(feature_dim)`` and the fixed-center MMC head
``logits = -||z - mu_l||^2``, trained on the ``mmc`` loss ``||z - mu_y||^2`` (batch mean)
with momentum SGD (0.9) and the L2 penalty ``1e-4 ||W||^2`` on every conv kernel as weight
decay ``2e-4`` on those kernels only (the same gradient). Needs torch and NumPy only;
import it where torch exists (``/work/refvenv``), never from the package.

    model = ResNetMMC(version=1, n=5, centers=centers)            # ResNet-32 v1, d = 64
    step = make_step(model, lr=0.01)                              # x NCHW, y int64 labels
    loss = step(x, y)                                             # one update, a float
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from torch import nn

L2_WEIGHT = 1e-4  # utils.models.resnet.L2_WEIGHT
LEAKY_SLOPE = 0.2  # utils.models.resnet.LEAKY_SLOPE
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # Keras' BatchNormalization: epsilon, 1 - momentum
BASE_FILTERS = 16
MARK = "@@ "  # prefixes each JSON reply on stdout (other output is ignored)


class ConvUnit(nn.Module):
    """The original ``resnet_layer``: conv-BN-act (``conv_first``) or BN-act-conv; ``in_c``
    is the channel count the BN sees when it comes first."""

    def __init__(self, in_c: int, out_c: int, *, kernel_size: int = 3, stride: int = 1,
                 activation: bool = True, batch_norm: bool = True, conv_first: bool = True,
                 use_leaky: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=True)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")  # he_normal
        nn.init.zeros_(self.conv.bias)
        self.conv_first = conv_first
        bn_c = out_c if conv_first else in_c
        self.bn = nn.BatchNorm2d(bn_c, eps=BN_EPS, momentum=BN_MOMENTUM) if batch_norm else None
        self.act = ((nn.LeakyReLU(LEAKY_SLOPE) if use_leaky else nn.ReLU())
                    if activation else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_first:
            x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x if self.conv_first else self.conv(x)


class Block(nn.Module):
    """One residual block: ``out_act(proj(x) + branch(x))`` (v1) or ``proj(x) + branch(x)``
    (v2; no activation after the add)."""

    def __init__(self, branch: List[ConvUnit], proj: "ConvUnit | None",
                 out_act: "nn.Module | None") -> None:
        super().__init__()
        self.branch = nn.Sequential(*branch)
        self.proj = proj
        self.out_act = out_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        x = (x if self.proj is None else self.proj(x)) + y
        return x if self.out_act is None else self.out_act(x)


def v1_trunk(n: int, use_bn: bool, leaky: bool) -> "tuple[List[nn.Module], int]":
    """ResNet v1 (``_resnet_v1``): the modules and the output channel count (64)."""
    unit = dict(use_leaky=leaky, batch_norm=use_bn)
    mods: List[nn.Module] = [ConvUnit(3, BASE_FILTERS, **unit)]
    filters = BASE_FILTERS
    for stack in range(3):
        out = BASE_FILTERS * 2 ** stack
        for block in range(n):
            down = stack > 0 and block == 0
            stride = 2 if down else 1
            branch = [ConvUnit(filters, out, stride=stride, **unit),
                      ConvUnit(out, out, activation=False, **unit)]
            proj = (ConvUnit(filters, out, kernel_size=1, stride=stride, activation=False,
                             batch_norm=False, use_leaky=leaky) if down else None)
            act = nn.LeakyReLU(LEAKY_SLOPE) if leaky else nn.ReLU()
            mods.append(Block(branch, proj, act))
            filters = out
    return mods, filters


def v2_trunk(n: int, use_bn: bool, leaky: bool) -> "tuple[List[nn.Module], int]":
    """ResNet v2 (``_resnet_v2``): the modules and the output channel count (256)."""
    mods: List[nn.Module] = [ConvUnit(3, BASE_FILTERS, use_leaky=leaky, batch_norm=use_bn)]
    f_in = BASE_FILTERS
    channels = f_in
    for stage in range(3):
        f_out = f_in * (4 if stage == 0 else 2)
        for block in range(n):
            pre = not (stage == 0 and block == 0)
            stride = 2 if stage > 0 and block == 0 else 1
            unit = dict(use_leaky=leaky, conv_first=False)
            branch = [ConvUnit(channels, f_in, kernel_size=1, stride=stride, activation=pre,
                               batch_norm=pre and use_bn, **unit),
                      ConvUnit(f_in, f_in, batch_norm=use_bn, **unit),
                      ConvUnit(f_in, f_out, kernel_size=1, batch_norm=use_bn, **unit)]
            proj = (ConvUnit(channels, f_out, kernel_size=1, stride=stride, activation=False,
                             batch_norm=False) if block == 0 else None)
            mods.append(Block(branch, proj, None))
            channels = f_out
        f_in = f_out
    if use_bn:
        mods.append(nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM))
    mods.append(nn.LeakyReLU(LEAKY_SLOPE) if leaky else nn.ReLU())
    return mods, channels


class ResNetMMC(nn.Module):
    """``x (batch, 3, H, W) -> logits (batch, L) = -||z - mu_l||^2``; ``z`` from
    ``Dense(feature_dim)`` on the pooled trunk (``use_dense``) or the pooled trunk itself.

    Args:
        version, n: as :func:`utils.models.resnet.build_feature_extractor`.
        centers: ``(L, d)`` fixed class centers (already scaled by C_MM), a buffer.
        use_bn, use_dense, use_leaky: the original's flags.
    """

    def __init__(self, version: int, n: int, centers: np.ndarray, *, use_bn: bool = True,
                 use_dense: bool = True, use_leaky: bool = False) -> None:
        super().__init__()
        mods, channels = (v1_trunk if version == 1 else v2_trunk)(n, use_bn, use_leaky)
        self.trunk = nn.Sequential(*mods)
        dim = int(centers.shape[1])
        self.dense = nn.Linear(channels, dim) if use_dense else None
        if self.dense is not None:
            nn.init.kaiming_normal_(self.dense.weight, nonlinearity="relu")
            nn.init.zeros_(self.dense.bias)
        elif dim != channels:
            raise ValueError(f"use_dense=False gives {channels} features, centers have {dim}")
        self.register_buffer("centers", torch.tensor(centers, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.trunk(x).mean(dim=(2, 3))
        if self.dense is not None:
            z = self.dense(z)
        return -(z.unsqueeze(1) - self.centers.unsqueeze(0)).square().sum(-1)


def param_counts(model: nn.Module) -> Dict[str, int]:
    """Trainable parameters and non-trainable state (BN moving statistics, centers), as
    Keras counts them (``num_batches_tracked`` has no Keras counterpart)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = sum(b.numel() for name, b in model.named_buffers()
                if not name.endswith("num_batches_tracked"))
    return {"trainable": trainable, "non_trainable": state}


def make_step(model: nn.Module, lr: float = 0.01) -> Callable[[torch.Tensor, torch.Tensor],
                                                              float]:
    """One training step ``(x, labels) -> loss``: forward, the mmc loss (batch mean),
    backward, momentum SGD with the conv kernels' L2 penalty as weight decay."""
    convs = [m.conv.weight for m in model.modules() if isinstance(m, ConvUnit)]
    conv_ids = {id(p) for p in convs}
    rest = [p for p in model.parameters() if id(p) not in conv_ids]
    optimizer = torch.optim.SGD([{"params": convs, "weight_decay": 2 * L2_WEIGHT},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=lr, momentum=0.9)
    model.train()

    def step(x: torch.Tensor, labels: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = -logits.gather(1, labels[:, None]).mean()  # mean ||z - mu_y||^2
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    return step


def time_steps(step: Callable, batches: List[Any], steps: int) -> List[float]:
    """Seconds of each of ``steps`` steps, cycling through ``batches``."""
    times = []
    for i in range(steps):
        x, labels = batches[i % len(batches)]
        start = time.perf_counter()
        step(x, labels)
        times.append(time.perf_counter() - start)
    return times


def reply(obj: Dict[str, Any]) -> None:
    print(MARK + json.dumps(obj), flush=True)


def worker(cfg: Dict[str, Any]) -> None:
    """Build, warm up, say ready, then time ``{"steps": k}`` requests read from stdin
    (one JSON line each) until EOF. ``cfg``: threads, version, n, data (an ``.npz`` with
    ``x`` NHWC, ``y`` one-hot, ``centers``), channels_last, warmup, seed."""
    torch.set_num_threads(int(cfg["threads"]))
    torch.set_num_interop_threads(1)
    torch.manual_seed(int(cfg.get("seed", 0)))
    data = np.load(cfg["data"])
    model = ResNetMMC(int(cfg["version"]), int(cfg["n"]), data["centers"])
    fmt = torch.channels_last if cfg.get("channels_last") else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.tensor(data["x"]).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    labels = torch.tensor(data["y"].argmax(1), dtype=torch.int64)
    batch = int(cfg["batch_size"])
    batches = [(x[i:i + batch].contiguous(memory_format=fmt), labels[i:i + batch])
               for i in range(0, len(x), batch)]
    step = make_step(model)
    start = time.perf_counter()
    time_steps(step, batches, int(cfg.get("warmup", 3)))
    reply({"ready": True, "params": param_counts(model), "warmup_s": time.perf_counter() - start,
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(),
           "mkldnn": torch.backends.mkldnn.is_available(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "channels_last": bool(cfg.get("channels_last"))})
    for line in sys.stdin:
        request = json.loads(line)
        reply({"times": time_steps(step, batches, int(request["steps"]))})


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
