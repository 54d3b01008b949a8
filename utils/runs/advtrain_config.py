"""Adversarial-training settings of a run (the original ``advtrain.py``'s), as plain values.

The crafting defaults (ε 8/256, step 2/256, 10 iterations: what ``advtrain.py`` fixed) are
defined here once; flags, run names and the crafting code read them from here.

    cfg = AdvTrainConfig(attack_method="MadryEtAl", adv_ratio=1.0, use_target=False)
"""
from __future__ import annotations

import dataclasses
import math

from utils.errors import UsageError

#: advtrain.py's fixed crafting settings: ε and step in /256 pixel units, iterations.
ADVTRAIN_EPS_256 = 8.0
ADVTRAIN_EPS_ITER_256 = 2.0
ADVTRAIN_NUM_ITER = 10
#: The attack the original advtrain.py crafted with by default (its flag's default).
ADVTRAIN_ATTACK = "MadryEtAl"


@dataclasses.dataclass(frozen=True)
class AdvTrainConfig:
    """The original ``advtrain.py`` settings, validated when built.

    Attributes:
        attack_method: the registered attack that crafts the training examples (an
            :data:`utils.attacks.core.ATTACK_SPECS` entry that offers adversarial training;
            checked by the training layer, which knows the attacks).
        adv_ratio: weight of the adversarial loss in ``[0, 1]``; 1.0 trains on
            adversarial examples only (then the clean forward pass is skipped).
        use_target: targeted crafting (random wrong target per example).
        eps_256, eps_iter_256: ℓ∞ radius and step in /256 pixel units (8 and 2).
        nb_iter: attack iterations (10; FGSM uses one step of size ε); the flag is
            ``--advtrain_num_iter``, the field keeps ``nb_iter`` because it is the
            run identity stored in ``flags.json`` and records.
    """

    attack_method: str = ADVTRAIN_ATTACK
    adv_ratio: float = 1.0
    use_target: bool = False
    eps_256: float = ADVTRAIN_EPS_256
    eps_iter_256: float = ADVTRAIN_EPS_ITER_256
    nb_iter: int = ADVTRAIN_NUM_ITER

    def __post_init__(self) -> None:
        if not (math.isfinite(self.adv_ratio) and 0.0 <= self.adv_ratio <= 1.0):
            raise UsageError(f"adv_ratio must lie in [0, 1], got {self.adv_ratio}")
        if not (math.isfinite(self.eps_256) and self.eps_256 >= 0):
            raise UsageError(f"advtrain eps must be >= 0 (/256 units), got {self.eps_256}")
        if not (math.isfinite(self.eps_iter_256) and self.eps_iter_256 > 0):
            raise UsageError(f"advtrain eps_iter must be > 0 (/256 units), got "
                             f"{self.eps_iter_256}")
        if self.nb_iter < 1:
            raise UsageError(f"advtrain num_iter must be >= 1, got {self.nb_iter}")

    @property
    def default_crafting(self) -> bool:
        """Crafting settings are advtrain.py's fixed ones (they then stay out of the name)."""
        return ((float(self.eps_256), float(self.eps_iter_256), int(self.nb_iter))
                == (ADVTRAIN_EPS_256, ADVTRAIN_EPS_ITER_256, ADVTRAIN_NUM_ITER))
