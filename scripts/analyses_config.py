"""``scripts/analyses.py``'s validated flags: one frozen :class:`AnalysesConfig` built
once in its ``main`` (:func:`config_from_flags`), and what it derives per model.

    config = config_from_flags(flags.FLAGS)   # UsageError on the first bad value
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Dict, Mapping, Tuple

WHICH = ("training_time", "ood", "gsce", "cmm_sweep", "features_2d", "sample_density")
OUTPUT_NAMES = {"training_time": "training_time", "ood": "ood_uncertainty",
                "gsce": "gsce_dependency", "cmm_sweep": "cmm_sweep",
                "features_2d": "features_2d", "sample_density": "sample_density"}
# The flags that decide an analysis' result (stored with it; --skip_done compares them).
SETTING_FLAGS = (
    "dataset", "data_dir", "version", "n", "optimizer", "lr", "batch_size", "seed",
    "model_dir", "epoch", "train_size", "num_examples", "mean_var", "use_BN", "use_dense",
    "use_leaky", "feature_dim", "ood_models", "ood_dataset", "ood_data_dir", "ood_examples",
    "gsce_models", "gsce_factor", "timing_steps", "timing_rounds", "timing_advtrain",
    "timing_train_images", "cmm_values", "cmm_pgd_examples", "cmm_pgd_iter",
    "features_examples", "train_missing", "density_models", "density_examples")


@dataclasses.dataclass(frozen=True)
class AnalysesConfig:
    """The validated flags of one run: ``which`` analyses, written to ``out_dir``
    (``skip_done``: keep those already made with the same settings), the C_MM sweep's
    ``cmm_values``; ``flag_values`` is every flag's value (read-only; the models trained
    here store it in their flags.json, and its SETTING_FLAGS are the stored settings),
    also readable as attributes (``config.dataset``)."""

    which: Tuple[str, ...]
    out_dir: str
    skip_done: bool
    cmm_values: Tuple[float, ...]
    flag_values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        if name == "flag_values":
            raise AttributeError(name)
        try:
            return self.flag_values[name]
        except KeyError:
            raise AttributeError(name) from None


def config_from_flags(fv: Any) -> AnalysesConfig:
    """Validate the parsed flags ``fv`` into one :class:`AnalysesConfig` (UsageError on
    the first bad value; nothing loaded or written)."""
    from utils.errors import UsageError

    values = types.MappingProxyType(fv.flag_values_dict())
    unknown = [w for w in values["which"] if w not in WHICH]
    if unknown or not values["which"]:
        raise UsageError(f"--which={','.join(values['which'])}: choose from {', '.join(WHICH)}")
    config = AnalysesConfig(tuple(values["which"]), values["out_dir"], values["skip_done"],
                            (), values)
    for variant in [*values["ood_models"], *values["gsce_models"], *values["density_models"]]:
        variant_values(config, variant)
    if not values["gsce_factor"] > 1:
        raise UsageError(f"gsce_factor must be > 1, got {values['gsce_factor']}")
    try:
        cmm_values = tuple(float(v) for v in values["cmm_values"])
    except ValueError:
        raise UsageError(f"cmm_values must be numbers, got {values['cmm_values']}") from None
    return dataclasses.replace(config, cmm_values=cmm_values)


def variant_values(config: AnalysesConfig, variant: str, **extra: Any) -> Any:
    """The flag values with the architecture flags of ``variant`` (and ``extra``)."""
    from utils.reporting.analyses import VARIANT_FLAGS
    from utils.errors import UsageError
    if variant not in VARIANT_FLAGS:
        raise UsageError(f"unknown model {variant!r}; choose from {', '.join(VARIANT_FLAGS)}")
    return types.SimpleNamespace(**dict(dict(config.flag_values), **VARIANT_FLAGS[variant],
                                        **extra))


def settings(config: AnalysesConfig) -> Dict[str, Any]:
    """The settings an analysis is stored with (``--skip_done`` compares them)."""
    return {name: config.flag_values[name] for name in SETTING_FLAGS}
