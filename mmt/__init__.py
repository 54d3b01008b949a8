"""mmt: Max-Mahalanobis Center (MMC) training and adaptive robustness evaluation in Keras 3.

The public face of the toolkit (Pang et al., ICLR 2020); what is listed in ``__all__`` stays
importable from here while the internals (``utils``, ``ts_centers``, ``keras_layers``) move.

    import mmt
    centers = mmt.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)  # (10, 64)
    logits = mmt.MMCLayer(centers)(features)       # (batch, 10) = -||z - mu_l||^2
    model.compile("adam", loss=mmt.MMCLoss())      # labels (batch,) ints or one-hot
    x_adv = mmt.pgd(model, x, y, eps=8 / 255, objective="mmc_un1")
    result = mmt.autoattack(model, x, y, eps=8 / 255)   # result.robust_accuracy

Units, shapes and ranges, everywhere in mmt:

* Images are ``(batch, H, W, C)`` float32. The attacks and :func:`evaluate` default to
  inputs in ``[clip_min, clip_max] = [0, 1]`` (pixels / 255); ``eps`` is in the MODEL'S
  INPUT UNITS (``8 / 255`` for [0, 1] pixels; the scripts' ``--eps_256`` is ``eps_256 /
  256`` here). For a model on mean-subtracted inputs pass per-pixel clips ``-mean`` and
  ``1 - mean``, or build it with ``pixel_mean`` (:func:`load_run`) to attack pixels.
* Models output LOGITS ``(batch, L)`` (an MMC head: minus squared distances to the
  centers), never probabilities.
* Labels are class indices ``(batch,)`` / ``(batch, 1)`` or one-hot ``(batch, L)``; any
  other shape is a ValueError (:func:`utils.losses.onehot_labels`, shared by the losses
  and the attacks).
* Centers are ``(L, d)`` float64, rows of norm ``c_mm`` (the original's ``mean_var``)
  from :func:`get_centers`; the crafters (:func:`mm_centers`, :func:`random_centers`,
  :func:`hierarchical_centers`) return unit-norm rows.

Two argument orders, on purpose: Keras losses are ``loss(y_true, y_pred)`` because
``model.compile`` calls them so; attack objectives are ``objective(logits, labels_onehot)
-> (batch,)``, minimised (DeepMind's attack convention), because every attack loop and
every registered objective calls them so, with optional ``targets`` after the labels.
"""
from keras_layers import (CenterLossDense, ElasticMMCLayer, GaussianMixtureLayer, ISCELayer,
                          MMCLayer, PixelMean, squared_distances)
from mmt.attacks import (ATTACK_FUNCTIONS, apgd, apgd_t, bim, cw_l2, fab_t, fgsm, mim,
                         multi_targeted, pgd, square)
from mmt.evaluation import EvaluationResult, autoattack, evaluate
from mmt.losses import (KERAS_LOSSES, CenterLoss, EMCLoss, ISCELoss, LabelSmoothingLoss,
                        LGMLoss, MMCLoss, MMLDALoss, RegisteredLoss, SCELoss, keras_loss)
from mmt.models import export_keras, load_checkpoint, load_keras, load_run
from ts_centers import (get_centers, hierarchical_centers, load_centers, minmax_centers,
                        mm_centers, random_centers, save_centers)
from utils.attacks.objectives import OBJECTIVES, register_objective
from utils.evaluation.members import PRESETS
from utils.runs.model_config import ModelConfig
from utils.runs.spec import RunSpec

__all__ = [
    # layers (keras_layers)
    "MMCLayer", "ElasticMMCLayer", "GaussianMixtureLayer", "CenterLossDense", "ISCELayer",
    "PixelMean", "squared_distances",
    # centers (ts_centers)
    "get_centers", "mm_centers", "minmax_centers", "random_centers", "hierarchical_centers",
    "load_centers", "save_centers",
    # losses
    "RegisteredLoss", "SCELoss", "MMCLoss", "MMLDALoss", "LabelSmoothingLoss", "LGMLoss",
    "CenterLoss", "EMCLoss", "ISCELoss", "KERAS_LOSSES", "keras_loss",
    # attacks and objectives
    "fgsm", "bim", "pgd", "mim", "apgd", "apgd_t", "multi_targeted", "fab_t", "square",
    "cw_l2", "ATTACK_FUNCTIONS", "OBJECTIVES", "register_objective",
    # evaluation
    "evaluate", "autoattack", "EvaluationResult", "PRESETS",
    # models
    "load_run", "load_checkpoint", "load_keras", "export_keras", "ModelConfig", "RunSpec",
]
