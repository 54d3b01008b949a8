"""Train SCE, MMC and MMLDA ResNets with the original repository's command lines.

Flags keep the names and defaults of P2333/Max-Mahalanobis-Training's ``train.py``;
checkpoints go to ``<model_dir>/trained_models/<dataset>/<run name>/model.NNN.weights.h5``.

    python3 train_models.py --batch_size=50 --mean_var=10 --dataset=cifar10 --optimizer=mom \
        --lr=0.01 --version=2 --use_MMLDA=True --use_ball=True --use_BN=True \
        --use_random=False --use_dense=True --use_leaky=False
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from utils.cli import run_main

FLAGS = flags.FLAGS

# The original train.py's flags, names and defaults.
flags.DEFINE_integer("batch_size", 50, "Global batch size (all replicas together).",
                     lower_bound=1)
flags.DEFINE_float("mean_var", 10, "C_MM: the norm of the Max-Mahalanobis centers (> 0).")
flags.DEFINE_string("optimizer", "mom", "Optimizer: mom (SGD, momentum 0.9) or Adam.")
flags.DEFINE_integer("version", 2, "ResNet version: 1 (depth 6n+2) or 2 (bottleneck, 9n+2).")
flags.DEFINE_float("lr", 0.01, "Initial learning rate (x0.1 after the schedule's epochs).")
flags.DEFINE_integer("feature_dim", None,
                     "Width of the dense feature layer; default: the original's 64 (v1) / 256 (v2).",
                     lower_bound=1)
flags.DEFINE_bool("is_2d_demo", False, "2-d features (the MNIST feature-plot demo).")
flags.DEFINE_bool("use_ball", True, "With use_MMLDA: MMC loss (True) or softmax CE (MMLDA).")
flags.DEFINE_bool("use_MMLDA", True, "MM-center head (True) or a softmax dense head (SCE).")
flags.DEFINE_bool("use_BN", True, "Batch normalization in the ResNet.")
flags.DEFINE_bool("use_random", False, "Random centers on the C_MM sphere instead of MM ones.")
flags.DEFINE_bool("use_dense", True, "Dense feature layer after pooling.")
flags.DEFINE_bool("use_leaky", False, "LeakyReLU instead of ReLU.")
flags.DEFINE_string("dataset", "mnist", "mnist | fashion_mnist | cifar10 | cifar100.")
# Ours.
flags.DEFINE_integer("n", 5, "ResNet blocks per stage (5: the paper's ResNet-32; 18: ResNet-110).")
flags.DEFINE_integer("epochs", None, "Epochs; default: the original's (50 MNIST-like, 200 CIFAR).",
                     lower_bound=1)
flags.DEFINE_list("lr_boundaries", [], "Epochs after which lr x0.1; empty = 30,40 / 100,150.")
flags.DEFINE_integer("checkpoint_every", 5, "Save model.NNN.weights.h5 every this many epochs "
                     "(and at the last epoch).")
flags.DEFINE_string("data_dir", None, "Directory with the Keras dataset files "
                    "(default: ~/.keras/datasets; Fashion-MNIST also /usr/share/datasets).")
flags.DEFINE_string("model_dir", ".", "Root under which trained_models/ is written.")
flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker"],
                  "tf.distribute strategy.")
flags.DEFINE_enum("mixed_precision", "off", ["off", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy (heads and losses stay float32).")
flags.DEFINE_integer("seed", 0, "Seed for weights, data order, augmentation, subsets, centers.")
flags.DEFINE_bool("resume", False, "Continue from the run directory's last checkpoint.")
flags.DEFINE_integer("train_size", None, "Train on a seeded subset of this size (default: all).",
                     lower_bound=1)
flags.DEFINE_integer("test_size", None, "Validate on the first N test images (default: all).",
                     lower_bound=1)
flags.DEFINE_bool("augment", True, "Shifts 0.1 and horizontal flips, as the original.")
flags.DEFINE_integer("verbose", 1, "0: quiet, 1: progress bar.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        from utils.errors import UsageError
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    from utils.classifier import ModelConfig
    from utils.errors import UsageError
    from utils.losses import loss_name_from_flags
    from utils.train_run import RunConfig, train

    try:
        boundaries = tuple(int(b) for b in FLAGS.lr_boundaries) or None
    except ValueError:
        raise UsageError(f"lr_boundaries must be integers, got {FLAGS.lr_boundaries}") from None
    model = ModelConfig(
        version=FLAGS.version, n=FLAGS.n, feature_dim=FLAGS.feature_dim,
        use_BN=FLAGS.use_BN, use_dense=FLAGS.use_dense, use_leaky=FLAGS.use_leaky,
        is_2d_demo=FLAGS.is_2d_demo, loss=loss_name_from_flags(FLAGS.use_MMLDA, FLAGS.use_ball),
        centers="random" if FLAGS.use_random else "mm", c_mm=FLAGS.mean_var,
        center_seed=FLAGS.seed)
    cfg = RunConfig(
        dataset=FLAGS.dataset, model=model, optimizer=FLAGS.optimizer, lr=FLAGS.lr,
        batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, lr_boundaries=boundaries,
        checkpoint_every=FLAGS.checkpoint_every, data_dir=FLAGS.data_dir,
        model_dir=FLAGS.model_dir, strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision, seed=FLAGS.seed, resume=FLAGS.resume,
        train_size=FLAGS.train_size, test_size=FLAGS.test_size,
        augment=FLAGS.augment, verbose=FLAGS.verbose,
        flags={"argv": sys.argv, **FLAGS.flag_values_dict()})
    result = train(cfg)
    print(f"final test accuracy {result.test_accuracy:.4f} (epoch {result.final_epoch}); "
          f"checkpoints in {result.run_dir}; weights sha256 {result.weights_digest}")


if __name__ == "__main__":
    run_main(main)
