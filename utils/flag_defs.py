"""absl flag definitions shared by the entry scripts (never imported by library code).

``train_models.py`` and ``advtest_*.py`` locate the same checkpoint from the same
architecture flags; each script passes its own defaults, as the original scripts had.

    define_model_flags(optimizer="Adam", lr=0.001)     # in an entry script, at import
    cfg = model_config_from_flags(flags.FLAGS)          # in its main()
"""
from __future__ import annotations

from typing import Any

from absl import flags

from utils.classifier import ModelConfig
from utils.losses import loss_name_from_flags


def define_model_flags(*, optimizer: str = "mom", lr: float = 0.01, batch_size: int = 50,
                       dataset: str = "mnist") -> None:
    """The original's architecture/run flags (names and help), with script defaults.

    Idempotent: when a second entry script is imported into the same process (the
    tests do this) the flags are defined once and the newest script's defaults apply.
    """
    if "mean_var" in flags.FLAGS:
        for name, value in (("optimizer", optimizer), ("lr", lr), ("batch_size", batch_size),
                            ("dataset", dataset)):
            flags.FLAGS.set_default(name, value)
        return
    flags.DEFINE_integer("batch_size", batch_size, "Global batch size (all replicas together).",
                         lower_bound=1)
    flags.DEFINE_float("mean_var", 10, "C_MM: the norm of the Max-Mahalanobis centers (> 0).")
    flags.DEFINE_string("optimizer", optimizer, "Optimizer: mom (SGD, momentum 0.9) or Adam.")
    flags.DEFINE_integer("version", 2, "ResNet version: 1 (depth 6n+2) or 2 (bottleneck, 9n+2).")
    flags.DEFINE_float("lr", lr, "Initial learning rate (x0.1 after the schedule's epochs).")
    flags.DEFINE_integer("feature_dim", None, "Width of the dense feature layer; default: the "
                         "original's 64 (v1) / 256 (v2).", lower_bound=1)
    flags.DEFINE_bool("is_2d_demo", False, "2-d features (the MNIST feature-plot demo).")
    flags.DEFINE_bool("use_ball", True, "With use_MMLDA: MMC loss (True) or softmax CE (MMLDA).")
    flags.DEFINE_bool("use_MMLDA", True, "MM-center head (True) or a softmax dense head (SCE).")
    flags.DEFINE_bool("use_BN", True, "Batch normalization in the ResNet.")
    flags.DEFINE_bool("use_random", False, "Random centers on the C_MM sphere instead of MM ones.")
    flags.DEFINE_bool("use_dense", True, "Dense feature layer after pooling.")
    flags.DEFINE_bool("use_leaky", False, "LeakyReLU instead of ReLU.")
    flags.DEFINE_string("dataset", dataset, "mnist | fashion_mnist | cifar10 | cifar100.")
    flags.DEFINE_integer("n", 5, "ResNet blocks per stage (5: the paper's ResNet-32; 18: "
                         "ResNet-110).", lower_bound=1)
    flags.DEFINE_string("data_dir", None, "Directory with the Keras dataset files "
                        "(default: ~/.keras/datasets; Fashion-MNIST also /usr/share/datasets).")
    flags.DEFINE_string("model_dir", ".", "Root holding trained_models/ (and advtrained_models/).")
    flags.DEFINE_integer("seed", 0, "Seed for weights, data order, augmentation, subsets, "
                         "centers and attack targets.")


def model_config_from_flags(values: Any) -> ModelConfig:
    """The :class:`ModelConfig` the original flags describe."""
    return ModelConfig(
        version=values.version, n=values.n, feature_dim=values.feature_dim,
        use_BN=values.use_BN, use_dense=values.use_dense, use_leaky=values.use_leaky,
        is_2d_demo=values.is_2d_demo,
        loss=loss_name_from_flags(values.use_MMLDA, values.use_ball),
        centers="random" if values.use_random else "mm", c_mm=values.mean_var,
        center_seed=values.seed)
