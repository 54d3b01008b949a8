"""absl flag definitions shared by the entry scripts (never imported by library code).

``train_models.py`` and ``advtest_*.py`` locate the same checkpoint from the same
architecture flags; each script passes its own defaults, as the original scripts had.

    def define_flags(): define_model_flags(optimizer="Adam", lr=0.001)  # entry script
    cfg = model_config_from_flags(flags.FLAGS)                         # in its main()
"""
from __future__ import annotations

import pathlib
import sys
from typing import Any, Collection, Optional

from absl import flags

import ts_centers
from utils.errors import UsageError
from utils.evaluation.sources import DataSource, ModelSource
from utils.loss_specs import CENTER_SET_HEADS, LOSSES, loss_name_from_flags
from utils.models.keras_io import head_kind, read_keras_file
from utils.results import check_writable, read_records
from utils.runs.advtrain_config import (ADVTRAIN_ATTACK, ADVTRAIN_EPS_256,
                                        ADVTRAIN_EPS_ITER_256, ADVTRAIN_NUM_ITER,
                                        AdvTrainConfig)
from utils.runs.model_config import LOSS_PARAM_FIELDS, ModelConfig
from utils.runs.spec import RunSpec
from utils.training.loop import OPTIMIZERS


_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: This project's top-level modules and packages (setup.cfg's py_modules and packages):
#: their flags are ours also once installed into site-packages (the console scripts).
_OWN_TOP_LEVEL = frozenset({"utils", "ts_centers", "scripts", "mmt", "train_models",
                            "advtest_iterative", "advtest_others", "keras_layers"})


def _defined_here(module_name: str) -> bool:
    """True for a module of this project (``utils.*``, an entry script, ``scripts.*``),
    not for installed packages (absl, TensorFlow), even when the virtual environment lies
    inside the checkout (``.venv/``, as ``make venv`` makes it)."""
    if module_name.split(".")[0] in _OWN_TOP_LEVEL:
        return True
    # A script run as __main__ files its flags under sys.argv[0], a path.
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None) or module_name
    try:
        resolved = pathlib.Path(path).resolve()
        return resolved.is_relative_to(_ROOT) and "site-packages" not in resolved.parts
    except (OSError, ValueError):
        return False


def forget_script_flags() -> None:
    """Remove the flags that entry scripts of this repository defined in this process.

    Each entry script's ``define_flags()`` starts with it, so its plain ``flags.DEFINE_*``
    calls define every flag afresh, with its own defaults and help, also when another entry
    script ran in the same process (``tests/conftest.run_entry``,
    ``scripts/reproduce_cpu.py``). absl's and TensorFlow's own flags stay.
    """
    values = flags.FLAGS
    names = {flag.name for module, module_flags in values.flags_by_module_dict().items()
             if _defined_here(module) for flag in module_flags}
    for name in sorted(names):
        if name in values:
            delattr(values, name)


def define_model_flags(*, optimizer: str = "mom", lr: float = 0.01, batch_size: int = 50,
                       dataset: str = "mnist", version: int = 2, n: int = 5) -> None:
    """The original's architecture/run flags (names and help), with script defaults."""
    flags.DEFINE_integer(
        "batch_size", batch_size,
        "Global batch size (all replicas together).")
    flags.DEFINE_float("mean_var", 10.0, "C_MM: the norm of the Max-Mahalanobis centers (> 0).")
    flags.DEFINE_string("optimizer", optimizer, "Optimizer: mom (SGD, momentum 0.9) or Adam.")
    flags.DEFINE_integer("version", version,
                         "ResNet version: 1 (depth 6n+2) or 2 (bottleneck, 9n+2).")
    flags.DEFINE_float("lr", lr, "Initial learning rate (x0.1 after the schedule's epochs).")
    flags.DEFINE_integer(
        "feature_dim", None, "Width of the dense feature layer; default: "
        "the original's 64 (v1) / 256 (v2).")
    flags.DEFINE_bool("is_2d_demo", False, "2-d features (the MNIST feature-plot demo).")
    flags.DEFINE_bool("use_ball", True, "With use_MMLDA: MMC loss (True) or softmax CE (MMLDA).")
    flags.DEFINE_bool("use_MMLDA", True, "MM-center head (True) or a softmax dense head (SCE).")
    flags.DEFINE_bool("use_BN", True, "Batch normalization in the ResNet.")
    flags.DEFINE_bool("use_random", False, "Random centers on the C_MM sphere instead of MM.")
    flags.DEFINE_bool("use_dense", True, "Dense feature layer after pooling.")
    flags.DEFINE_bool("use_leaky", False, "LeakyReLU instead of ReLU.")
    flags.DEFINE_string("dataset", dataset, "mnist | fashion_mnist | cifar10 | cifar100.")
    flags.DEFINE_integer(
        "n", n, "ResNet blocks per stage (5: the paper's ResNet-32; 18: "
        "ResNet-110).")
    flags.DEFINE_string(
        "data_dir", None, "Directory with the Keras dataset files "
        "(default: ~/.keras/datasets; Fashion-MNIST also /usr/share/datasets).")
    flags.DEFINE_string(
        "model_dir", ".",
        "Root holding trained_models/ (and advtrained_models/).")
    flags.DEFINE_integer(
        "seed", 0, "Seed for weights, data order, augmentation, subsets, "
        "random centers and attack targets.")
    define_loss_flags()


def define_loss_flags() -> None:
    """``--loss`` and ``--centers`` (default: from the original's flags) and the loss
    hyper-parameters (their defaults and sources: :class:`utils.models.classifier.ModelConfig`)."""
    losses = "; ".join(f"{n}: {LOSSES.get(n).description}" for n in LOSSES.names())
    flags.DEFINE_enum(
        "loss", None, help="Training loss; default: from use_MMLDA/use_ball "
        f"(sce, mmc, mmlda). {losses}", enum_values=LOSSES.names())
    flags.DEFINE_enum(
        "centers", None, help="Center set of mmc/mmlda/emc; default: random with "
        "use_random, else mm. hierarchical: CIFAR-100 super-/sub-class MM centers.",
        enum_values=ts_centers.CENTER_SETS.names())
    flags.DEFINE_float("sub_center_ratio", 0.1, "Hierarchical centers: C^2/C^1, in (0, 1).")
    flags.DEFINE_float(
        "center_lambda", 0.003, "Center loss weight lambda (>= 0; Wen et "
        "al. 2016).")
    flags.DEFINE_float("center_alpha", 0.5, "Center loss: center update rate in (0, 1].")
    flags.DEFINE_float("lgm_margin", 0.1, "L-GM margin alpha (>= 0; Wan et al.'s code).")
    flags.DEFINE_float("lgm_lambda", 0.01, "L-GM likelihood weight (>= 0; Wan et al.'s code).")
    flags.DEFINE_float("emc_alpha", 0.1, "EMC prior variance alpha of the centers (> 0).")
    flags.DEFINE_float("isce_s", 1.0, "I-SCE scale s on the true class (>= 1).")
    flags.DEFINE_float("isce_m", 0.1, "I-SCE margin m on the true class (> 0).")
    flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing epsilon in [0, 1).")


def define_eval_flags(*, attack_method: str, attack_help: str, results_file: str) -> None:
    """Flags every ``advtest_*.py`` shares: which checkpoint, which objective, where to."""
    flags.DEFINE_string("attack_method", attack_method, attack_help)
    flags.DEFINE_string(
        "attack_method_for_advtrain", "FastGradientMethod",
        "Attack the model was adversarially trained with (checkpoint name).")
    flags.DEFINE_bool("target", True, "Targeted attack (targets uniform among wrong labels).")
    flags.DEFINE_bool(
        "use_target", False, "The model was adversarially trained with "
        "targeted attacks (checkpoint name).")
    flags.DEFINE_bool(
        "use_advtrain", True, "Load from advtrained_models/ (adversarially "
        "trained).")
    flags.DEFINE_float("adv_ratio", 1.0, "adv_ratio of the adversarially trained checkpoint.")
    define_crafting_flags()
    flags.DEFINE_string(
        "model_path", None, "Evaluate this .keras file (any Keras model "
        "from [0, 1] pixels to logits, e.g. from scripts/export_keras.py) instead of a run; "
        "--objective defaults to ce, or mmc_* when its head is an MMCLayer.")
    flags.DEFINE_integer("epoch", 1, "Epoch of the checkpoint to load (model.NNN.weights.h5).")
    flags.DEFINE_bool(
        "normalize_output_for_ball", True, "Softmax on MMC outputs at "
        "inference, as the original. It changed no attack there (cleverhans 2.1.0's model_loss "
        "takes a Softmax op's input as the logits, and the raw MMC output is used as logits "
        "otherwise: softmax CE on -||z - mu||^2 either way, our ce objective, i.e. "
        "--adaptive=False), nor predictions; accepted and recorded, changes nothing.")
    flags.DEFINE_bool(
        "adaptive", True, "Adaptive objectives for MMC models (paper 002 B.4); "
        "False attacks every model with the SCE objectives (ce, C&W margin).")
    flags.DEFINE_string("objective", None, "Override the objective (ce, margin, mmc_un1, ...).")
    flags.DEFINE_integer(
        "num_examples", None, "Evaluate the first N test images.",
        lower_bound=1)
    flags.DEFINE_string(
        "results_file", results_file,
        "JSON-lines results file (a .csv beside it is rewritten).")
    flags.DEFINE_bool("progress", True, "Progress bar.")
    flags.DEFINE_integer(
        "eval_batch_size", None, "Images attacked per batch (default: "
        "--batch_size, which also names the checkpoint). Results do not depend on it: "
        "random starts are drawn per example (seed, example index, restart, member).")
    flags.DEFINE_bool(
        "jit_compile", False, "XLA-compile the model's forward pass the "
        "attacks call (logits within float tolerance of without).")


def model_config_from_flags(values: Any) -> ModelConfig:
    """The :class:`ModelConfig` the flags describe; UsageError for bad loss settings.

    Without ``--loss``/``--centers`` the original's flags decide, as before.
    """
    loss = values.loss or loss_name_from_flags(values.use_MMLDA, values.use_ball)
    centers = values.centers or ("random" if values.use_random else "mm")
    alias = LOSSES.get(loss).alias_of
    if alias is not None:
        if values.centers not in (None, alias[1]):
            raise UsageError(f"--loss={loss} means --centers={alias[1]}; drop "
                             f"--centers={values.centers} or use --loss={alias[0]}")
        loss, centers = alias
    cfg = ModelConfig(
        version=values.version, n=values.n, feature_dim=values.feature_dim,
        use_BN=values.use_BN, use_dense=values.use_dense, use_leaky=values.use_leaky,
        is_2d_demo=values.is_2d_demo, loss=loss, centers=centers, c_mm=values.mean_var,
        # Only seeded center sets use it; the checkpoint stores the centers anyway.
        center_seed=values.seed if centers != "mm" else 0,
        sub_center_ratio=values.sub_center_ratio,
        **{field: getattr(values, field) for field in LOSS_PARAM_FIELDS})
    return cfg


#: Training flags that act only under adversarial training (the original advtrain.py's).
ADVTRAIN_ONLY_FLAGS = ("attack_method", "adv_ratio", "use_target", "advtrain_eps_256",
                       "advtrain_eps_iter_256", "advtrain_num_iter")


def train_run_spec(values: Any) -> RunSpec:
    """The :class:`utils.runs.spec.RunSpec` ``train_models.py``'s flags name.

    UsageError when a flag of :data:`ADVTRAIN_ONLY_FLAGS` is given without
    ``--use_advtrain=True`` (the original's advtrain.py command lines would otherwise
    silently train a standard model)."""
    if not values.use_advtrain:
        given = [n for n in ADVTRAIN_ONLY_FLAGS if n in flags.FLAGS and flags.FLAGS[n].present]
        if given:
            raise UsageError(f"--{given[0]} acts only under adversarial training (the "
                             "original's advtrain.py): add --use_advtrain=True")

    return RunSpec(values.dataset, model_config_from_flags(values), values.optimizer,
                   values.lr, values.batch_size, advtrain_config_from_flags(values))


def eval_run_spec(values: Any, cfg: ModelConfig) -> RunSpec:
    """The :class:`utils.runs.spec.RunSpec` the ``advtest_*.py`` flags name (the trained
    model's ``attack_method_for_advtrain`` plays training's ``attack_method``)."""
    adv = advtrain_config_from_flags(values, values.attack_method_for_advtrain)
    return RunSpec(values.dataset, cfg, values.optimizer, values.lr, values.batch_size, adv)


#: Flags that name a training run: given with --model_path they contradict the file.
RUN_FLAGS = ("version", "n", "feature_dim", "use_BN", "use_dense", "use_leaky", "is_2d_demo",
             "mean_var", "use_random", "centers", "sub_center_ratio", "optimizer", "lr",
             "epoch", "attack_method_for_advtrain", "adv_ratio", "use_target",
             "advtrain_eps_256", "advtrain_eps_iter_256", "advtrain_num_iter", "model_dir")
LOSS_FLAGS = ("loss", "use_MMLDA", "use_ball")


def model_path_config(values: Any, given: Optional[Collection[str]] = None) -> ModelConfig:
    """With ``--model_path``: the config whose ``loss`` picks the attack objectives (``mmc``
    for an MMCLayer head, else ``sce``: ce); UsageError for flags that contradict the file
    (any run-naming flag, ``--use_advtrain=True``, or a loss of the other head kind)."""
    given = present_flags() if given is None else given
    named = [n for n in RUN_FLAGS if n in given]
    named += ["use_advtrain"] if values.use_advtrain and "use_advtrain" in given else []
    if named:
        raise UsageError(f"--model_path={values.model_path} is evaluated as it is; --{named[0]} "
                         "names a training run and contradicts it: drop it")
    head = head_kind(read_keras_file(values.model_path)[0])
    if not any(n in given for n in LOSS_FLAGS):
        return ModelConfig(loss="mmc" if head == "mmc" else "sce")
    cfg = model_config_from_flags(values)
    if (LOSSES.get(cfg.loss).head in CENTER_SET_HEADS) != (head == "mmc"):
        raise UsageError(f"--model_path={values.model_path} has a {head} head but the loss "
                         f"flags say {cfg.loss}: drop --loss/--use_MMLDA/--use_ball")
    return cfg


def present_flags() -> frozenset:
    """The names of the flags given on the command line."""
    return frozenset(name for name in flags.FLAGS if flags.FLAGS[name].present)


def eval_batch_size(values: Any) -> int:
    """Images per attacked batch: ``--eval_batch_size``, else the run's ``--batch_size``."""
    return values.batch_size if values.eval_batch_size is None else values.eval_batch_size


def check_eval_flags(values: Any, results_file: str) -> None:
    """Checks of the ``advtest_*.py`` flags that need no data: run before loading any.

    The optimizer is known (else the checkpoint name would just not exist), the results
    file parses and its directory is writable.
    """
    OPTIMIZERS.get(values.optimizer)
    check_writable(results_file)
    read_records(results_file)


def data_source(values: Any) -> DataSource:
    """The test set the ``advtest_*.py`` flags name."""
    return DataSource(values.dataset, values.data_dir, num_examples=values.num_examples,
                      seed=values.seed)


def model_source(values: Any, cfg: ModelConfig) -> ModelSource:
    """The checkpoint (or ``--model_path`` file) the ``advtest_*.py`` flags name."""
    if getattr(values, "model_path", None):
        return ModelSource(model_path=values.model_path)
    return ModelSource(spec=eval_run_spec(values, cfg), model_dir=values.model_dir,
                       epoch=values.epoch, use_advtrain=bool(values.use_advtrain))


def define_advtrain_flags() -> None:
    """Adversarial-training flags of the original ``advtrain.py`` (``adv_ratio``,
    ``attack_method``, ``use_target``) plus ``use_advtrain`` and the crafting settings it
    fixed (ε 8/256, step 2/256, 10 iterations)."""
    flags.DEFINE_bool(
        "use_advtrain", False, "Adversarial training (advtrain.py); "
        "checkpoints go to advtrained_models/.")
    flags.DEFINE_string(
        "attack_method", ADVTRAIN_ATTACK, "Attack crafting the training "
        "examples: MadryEtAl | MomentumIterativeMethod | FastGradientMethod | "
        "BasicIterativeMethod.")
    flags.DEFINE_float(
        "adv_ratio", 1.0, "Loss weight of the adversarial examples in each "
        "mini-batch, in [0, 1] (1: adversarial only).")
    flags.DEFINE_bool("use_target", False, "Targeted crafting (random wrong target).")
    define_crafting_flags()


def define_crafting_flags() -> None:
    """The adversarial-training crafting settings (they name the run, so training and
    evaluation both take them; defaults: advtrain.py's fixed ε 8/256, step 2/256, 10 it.)."""
    flags.DEFINE_float(
        "advtrain_eps_256", ADVTRAIN_EPS_256, "Adversarial training: crafting ε in /256 "
        "pixel units (names the run).")
    flags.DEFINE_float(
        "advtrain_eps_iter_256", ADVTRAIN_EPS_ITER_256, "Adversarial training: crafting step "
        "in /256 pixel units (names the run).")
    flags.DEFINE_integer(
        "advtrain_num_iter", ADVTRAIN_NUM_ITER, "Adversarial training: crafting "
        "iterations (FGSM: 1; names the run).")


def advtrain_config_from_flags(values: Any, attack_method: Optional[str] = None
                               ) -> Optional[AdvTrainConfig]:
    """The :class:`utils.runs.advtrain_config.AdvTrainConfig` the flags describe, or None
    without ``--use_advtrain``; ``attack_method`` defaults to ``--attack_method``."""
    if not values.use_advtrain:
        return None
    return AdvTrainConfig(attack_method=attack_method or values.attack_method,
                          adv_ratio=values.adv_ratio, use_target=values.use_target,
                          eps_256=values.advtrain_eps_256,
                          eps_iter_256=values.advtrain_eps_iter_256,
                          nb_iter=values.advtrain_num_iter)
