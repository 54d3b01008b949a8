"""cleverhans 4 TF2 attacks on Keras 3 / NumPy 2, driven by our objectives (a package:
``core`` the adapter and gradient attacks, ``spsa``, ``cw``).

The one place holding our fixes for cleverhans (the package itself is never edited).
:func:`cleverhans_loss_fn` turns a :mod:`utils.attacks.objectives` objective (the attacker
MINIMISES it) into cleverhans' ``loss_fn(labels, logits)``; the attacks keep cleverhans'
names and take ``y`` (true labels), ``targets`` (targeted iff given; int ``(batch,)`` or
one-hot) and ``objective`` (a registered name or a callable).

    x_adv = projected_gradient_descent(model, x, 8 / 256, 2 / 256, 10, y=y, objective="mmc_un1")
    x_adv = carlini_wagner_l2(model, x, y=y, targets=t, objective="mmc_tar2")

cleverhans 4.0.0 breakages fixed here (tests/test_cleverhans_compat.py shows each): C&W-L2
calls ``optimizer.variables()`` (a list in Keras 3, and zeroing it zeroes the learning
rate), shapes ``const`` like ``x``, shares one optimizer across batches, takes any ``y``
as targets and does not slice it per batch, ignores ``confidence`` when judging success,
multiplies bisected constants by 10, needs 4-D inputs; SPSA passes ``lr=`` to a Keras 3
Adam and reads ``self.lr``; BIM/MadryEtAl's default ``sanity_checks`` call ``np.all`` on a
ragged list (NumPy >= 1.24 refuses); MadryEtAl starts in a 0.3-ball; MIM hard-codes CE.
"""
from utils.attacks.cleverhans_compat.core import (  # noqa: F401
    CleverhansLossFn, ModelFn, basic_iterative_method, check_inputs, cleverhans_loss_fn,
    fast_gradient_method, madry_et_al, momentum_iterative_method, patch_attribute,
    projected_gradient_descent, resolve_objective)
from utils.attacks.cleverhans_compat.cw import CWConfig, carlini_wagner_l2  # noqa: F401
from utils.attacks.cleverhans_compat.spsa import KerasSPSAAdam, spsa  # noqa: F401
from utils.attacks.const_search import is_adversarial, update_const  # noqa: F401
