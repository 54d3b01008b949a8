r"""The reproducibility report's (paper 000) analyses on our models; outputs JSON + Markdown
(+ PNG) in ``--out_dir`` (default ``reports/analyses``).

``--which`` picks any of:
  training_time  000 Table 1: seconds per training step, SCE vs MMC-10 (and AT-SCE vs
                 AT-MMC-10 with --timing_advtrain), same batch, alternating rounds.
  ood            000 Table 3: top-3 scores of --ood_models on inputs of another dataset
                 (--ood_dataset, default MNIST; generated digits, noise and inverted images
                 when it is missing, labelled as such).
  gsce           000 section 4.5: share of test points whose two largest non-true class
                 scores are within --gsce_factor (5) of each other (--gsce_models).
  cmm_sweep      000 Table 4: MMC with C_MM in --cmm_values, clean and adaptive PGD accuracy.
  features_2d    000 Figure 2: 2-d features (is_2d_demo) of SCE and MMC-10, as a PNG.
  sample_density 002 section 3: training features within r of their class center / ball volume.
Models are found from the usual training flags (``--model_dir``, ``--epoch`` = the
checkpoint to load); a missing one is an error unless ``--train_missing`` trains it
(``--epoch`` epochs on ``--train_size`` images). cmm_sweep and features_2d use their own
runs (MMC at each C_MM; is_2d_demo models) under the same ``--model_dir``.

    python scripts/analyses.py --which=ood,gsce --model_dir=runs/cpu_repro --epoch=2
    python scripts/analyses.py --which=cmm_sweep,features_2d --model_dir=runs/analyses \
        --train_missing --train_size=6000 --epoch=2
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any, Dict, List, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

from absl import flags  # noqa: E402

from utils.cli.common import refuse_arguments, start_script  # noqa: E402
from utils.cli.flags import define_model_flags, forget_script_flags  # noqa: E402
from scripts.analyses_config import (OUTPUT_NAMES, WHICH, AnalysesConfig,  # noqa: E402
                                     config_from_flags, settings as _settings,
                                     variant_values as _values)
from scripts.analyses_models import get_model  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This script's flags and defaults (called again by in-process runners to make these
    the defined flags: :func:`utils.cli.flags.forget_script_flags`)."""
    forget_script_flags()
    define_model_flags(optimizer="Adam", lr=0.001, batch_size=50, dataset="fashion_mnist",
                       version=1, n=1)
    flags.DEFINE_list("which", list(WHICH), "Analyses to run: " + ", ".join(WHICH) + ".")
    flags.DEFINE_integer(
        "epoch", 2, "Checkpoint epoch to load (and epochs to train "
        "with --train_missing).")
    flags.DEFINE_string("out_dir", "reports/analyses", "Where the outputs go.")
    flags.DEFINE_bool("train_missing", False, "Train models whose checkpoint is missing.")
    flags.DEFINE_integer(
        "train_size", None, "Training images of models trained here "
        "(seeded subset; default all).", lower_bound=1)
    flags.DEFINE_integer(
        "num_examples", None, "Test images for clean accuracy, g-SCE, "
        "in-distribution scores and the feature plot (default all).", lower_bound=1)
    flags.DEFINE_list("ood_models", ["SCE", "MMC-10"], "Models for ood.")
    flags.DEFINE_string(
        "ood_data_dir", None, "Directory of --ood_dataset's files "
        "(default: that dataset's usual places; --data_dir is searched only for --dataset).")
    flags.DEFINE_string(
        "ood_dataset", "mnist", "Dataset whose test images are the OOD "
        "inputs (generated inputs stand in when it is missing).")
    flags.DEFINE_integer("ood_examples", 500, "OOD inputs per kind.", lower_bound=1)
    flags.DEFINE_list("gsce_models", ["SCE", "MMLDA"], "Models for gsce (softmax-trained).")
    flags.DEFINE_float("gsce_factor", 5.0, "Scores within this factor are comparable.")
    flags.DEFINE_integer("timing_steps", 20, "Timed steps per round.", lower_bound=1)
    flags.DEFINE_integer("timing_rounds", 3, "Timed rounds per setup.", lower_bound=1)
    flags.DEFINE_bool("timing_advtrain", True, "Also time PGD-10 adversarial training.")
    flags.DEFINE_integer(
        "timing_train_images", 60000, "Epoch size for the minutes "
        "estimate (000: 50 epochs).", lower_bound=1)
    flags.DEFINE_list("cmm_values", ["1", "10", "50", "100"], "C_MM values of the sweep.")
    flags.DEFINE_integer(
        "cmm_pgd_examples", 200, "PGD images per C_MM (0: clean only).",
        lower_bound=0)
    flags.DEFINE_integer("cmm_pgd_iter", 10, "PGD iterations of the sweep.", lower_bound=1)
    flags.DEFINE_integer(
        "features_examples", 2000, "Test images in the 2-d plot.",
        lower_bound=10)
    flags.DEFINE_list(
        "density_models", ["SCE", "MMLDA", "MMC-10"], "Models for "
        "sample_density.")
    flags.DEFINE_integer(
        "density_examples", 10000, "Training images (a seeded subset of "
        "the models') whose features sample_density counts.", lower_bound=2)
    flags.DEFINE_bool(
        "skip_done", False, "Skip an analysis whose JSON in --out_dir was "
        "made with the same settings.")
    flags.DEFINE_integer("verbose", 0, "Training progress: 0 quiet, 1 progress bar.")


# ------------------------------------------------------------------ models

def _test_data(config: AnalysesConfig, train_size: "int | None" = None) -> Any:
    """``--dataset`` (test set cut to ``--num_examples``; ``train_size`` training images)."""
    from utils.data import load_dataset
    return load_dataset(config.dataset, config.data_dir, train_size=train_size,
                        test_size=config.num_examples, seed=config.seed)


def _common(config: AnalysesConfig, **extra: Any) -> Dict[str, Any]:
    from utils.models.resnet import describe
    return dict(dataset=config.dataset, arch=describe(config.version, config.n),
                optimizer=config.optimizer, lr=config.lr, batch_size=config.batch_size,
                epoch=config.epoch, **extra)


# ------------------------------------------------------------------ analyses

def run_training_time(config: AnalysesConfig) -> Dict[str, Any]:
    import tensorflow as tf

    from utils.runs.advtrain_config import AdvTrainConfig
    from utils.reporting.analyses import epoch_minutes, time_training
    from utils.data import load_dataset
    from utils.cli.flags import model_config_from_flags

    images = config.batch_size * min(config.timing_steps, 40)
    data = load_dataset(config.dataset, config.data_dir, train_size=images, test_size=1,
                        seed=config.seed)
    setups = {"SCE": (model_config_from_flags(_values(config, "SCE")), None),
              "MMC-10": (model_config_from_flags(_values(config, "MMC-10", mean_var=10.0)),
                         None)}
    if config.timing_advtrain:
        adv = AdvTrainConfig()  # PGD-10, eps 8/256, step 2/256, adversarial examples only
        setups.update({f"AT-{k}": (cfg, adv) for k, (cfg, _) in list(setups.items())})
    timed = time_training(setups, data, batch_size=config.batch_size, steps=config.timing_steps,
                          rounds=config.timing_rounds, optimizer=config.optimizer, lr=config.lr,
                          seed=config.seed)
    rows = [dict(label=label, **t, minutes_50_epochs=epoch_minutes(
        t["median_step_s"], config.timing_train_images, config.batch_size, 50))
        for label, t in timed.items()]
    step = {r["label"]: r["median_step_s"] for r in rows}
    ratios = {"MMC/SCE": step["MMC-10"] / step["SCE"]}
    if config.timing_advtrain:
        ratios.update({"AT-MMC/AT-SCE": step["AT-MMC-10"] / step["AT-SCE"],
                       "AT-SCE/SCE": step["AT-SCE"] / step["SCE"],
                       "AT-MMC/MMC": step["AT-MMC-10"] / step["MMC-10"]})
    gpus = tf.config.list_logical_devices("GPU")
    return _common(config, rows=rows, ratios=ratios, steps=config.timing_steps,
                   rounds=config.timing_rounds, train_images=config.timing_train_images,
                   device=gpus[0].name if gpus else f"CPU, {os.cpu_count()} cores")


def ood_inputs(config: AnalysesConfig, data: Any) -> "tuple[Dict[str, Any], List[str]]":
    """OOD inputs in [0, 1] pixels ``(M, H, W, C)`` by name, and notes on what stands in."""
    import numpy as np

    from utils.reporting.analyses import rendered_digits
    from utils.data import load_raw_dataset
    from utils.errors import UsageError

    n, notes, sets = config.ood_examples, [], {}
    height, width, channels = data.input_shape
    try:
        raw = load_raw_dataset(config.ood_dataset, config.ood_data_dir)
        x = raw.x_test[:n].astype(np.float32) / 255
        if x.shape[1:] == (height, width, channels):
            sets[f"{config.ood_dataset} test images (real)"] = x
        else:
            notes.append(f"{config.ood_dataset} images are {x.shape[1:]}, the models take "
                         f"{data.input_shape}; left out")
    except UsageError as exc:
        notes.append(f"real {config.ood_dataset} is not on this machine ({str(exc)[:160]}…); "
                     "generated MNIST-like digits, noise and inverted images stand in")
    rng = np.random.default_rng(config.seed)
    if (height, width) == (28, 28):
        digits, _ = rendered_digits(n, 28, config.seed)
        sets["rendered digits (generated, MNIST-like)"] = np.repeat(
            digits[..., None], channels, axis=-1)
    sets["uniform noise (generated)"] = rng.uniform(0, 1, (n, height, width, channels)
                                                    ).astype(np.float32)
    in_pixels = np.clip(data.x_test[:n] + data.mean, 0, 1)
    sets[f"inverted {config.dataset} test images (1 - x)"] = (1 - in_pixels).astype(np.float32)
    return sets, notes


def run_ood(config: AnalysesConfig) -> Dict[str, Any]:
    from utils.reporting.analyses import ood_summary, predict
    from utils.cli.flags import model_config_from_flags
    from utils.loss_specs import LOSSES

    data = _test_data(config)
    sets, notes = ood_inputs(config, data)
    models = []
    for variant in config.ood_models:
        values = _values(config, variant)
        model, name = get_model(values, data)
        head = LOSSES.get(model_config_from_flags(values).loss).head
        logits_in = predict(model, data.x_test)
        results = {f"{k} ({len(x)})": ood_summary(logits_in, predict(model, x - data.mean),
                                                  head=head) for k, x in sets.items()}
        models.append({"model": variant, "run_name": name, "head": head, "results": results})
    return _common(config, in_dataset=config.dataset, n_in=int(len(data.x_test)),
                   models=models, notes=notes)


def run_gsce(config: AnalysesConfig) -> Dict[str, Any]:
    from utils.reporting.analyses import predict, relative_dependency

    data = _test_data(config)
    models = []
    for variant in config.gsce_models:
        model, name = get_model(_values(config, variant), data)
        logits = predict(model, data.x_test)
        models.append({"model": variant, "run_name": name, **{
            ranking: relative_dependency(logits, data.y_test, factor=config.gsce_factor,
                                         ranking=ranking) for ranking in ("non_true", "overall")}})
    return _common(config, models=models, factor=config.gsce_factor)


def run_cmm_sweep(config: AnalysesConfig) -> Dict[str, Any]:
    from utils.reporting.analyses import cmm_row

    data = _test_data(config)
    rows = []
    for c_mm in config.cmm_values:
        model, name = get_model(_values(config, "MMC-10", mean_var=c_mm), data)
        rows.append(dict(cmm_row(model, data, c_mm=c_mm, pgd_examples=config.cmm_pgd_examples,
                                 num_iter=config.cmm_pgd_iter, seed=config.seed), run_name=name))
    first = rows[0]
    return _common(config, rows=rows, epochs=config.epoch,
                   train_images=_train_images(config),
                   n_clean=first["n_clean"], n_pgd=first.get("n_pgd"),
                   pgd_eps_256=first.get("pgd_eps_256"), pgd_nb_iter=first.get("pgd_nb_iter"))


def _train_images(config: AnalysesConfig) -> int:
    from utils.data import load_raw_dataset
    return config.train_size or len(load_raw_dataset(config.dataset, config.data_dir).x_train)


def run_features_2d(config: AnalysesConfig) -> "tuple[Dict[str, Any], bytes]":
    from utils.reporting.analyses import accuracy, centers_of, features_of, spread_ratio
    from utils.reporting.analyses_render import render_features_png

    data = _test_data(config)
    x, y = data.x_test[:config.features_examples], data.y_test[:config.features_examples]
    models, panels = [], []
    for variant in ("SCE", "MMC-10"):
        model, name = get_model(_values(config, variant, is_2d_demo=True), data)
        z = features_of(model, x)
        models.append({"model": variant, "run_name": name, "spread_ratio": spread_ratio(z, y),
                       "clean_accuracy": accuracy(model, data.x_test, data.y_test)})
        panels.append({"title": f"{variant}\n{name}", "z": z, "y": y,
                       "centers": centers_of(model)})
    payload = _common(config, models=models, n=int(len(x)), epochs=config.epoch,
                      train_images=_train_images(config))
    return payload, render_features_png(panels)


def run_sample_density(config: AnalysesConfig) -> "tuple[Dict[str, Any], bytes]":
    """Training features (a seeded subset) around the class centers: payload, PNG."""
    import numpy as np

    from utils.reporting import analyses_render, density
    from utils.reporting.analyses import accuracy

    data = _test_data(config, config.train_size or config.density_examples)
    keep = np.sort(np.random.default_rng(config.seed).permutation(len(data.x_train))[
        :config.density_examples])
    models = []
    for variant in config.density_models:
        model, name = get_model(_values(config, variant), data)
        models.append({"model": variant, "run_name": name, "profile": density.model_density(
            model, data.x_train[keep], data.y_train[keep], data.num_classes),
            "clean_accuracy": accuracy(model, data.x_test, data.y_test)})
    return (_common(config, models=models, n=int(len(keep)),
                    train_images=_train_images(config)),
            analyses_render.render_density_png(models))


# ------------------------------------------------------------------ main

def _done(path: pathlib.Path, settings: Dict[str, Any]) -> bool:
    try:
        return json.loads(path.read_text()).get("settings") == json.loads(json.dumps(settings))
    except (OSError, ValueError):
        return False


def run_one(config: AnalysesConfig, which: str) -> List[pathlib.Path]:
    """Run analysis ``which`` and write its outputs; returns the paths written."""
    from utils.reporting import analyses_render as render
    from utils.results import provenance

    name = OUTPUT_NAMES[which]
    runner, renderer = {  # a runner returns the payload, or (payload, PNG bytes)
        "training_time": (run_training_time, render.render_training_time),
        "ood": (run_ood, render.render_ood), "gsce": (run_gsce, render.render_gsce),
        "cmm_sweep": (run_cmm_sweep, render.render_cmm),
        "features_2d": (run_features_2d, render.render_features),
        "sample_density": (run_sample_density, render.render_density)}[which]
    out: Any = runner(config)
    payload, png = out if isinstance(out, tuple) else (out, None)
    payload.update(analysis=which, settings=_settings(config), **provenance())
    markdown = renderer(payload) if png is None else renderer(payload, f"{name}.png")
    return render.write_analysis(config.out_dir, name, payload, markdown, png)


def run_all(config: AnalysesConfig) -> None:
    """Run (or, with ``skip_done``, skip) each analysis of ``config``; one line each."""
    from utils.runs.checkpoints import ensure_writable_dir

    ensure_writable_dir(pathlib.Path(config.out_dir), flag="--out_dir")
    for which in config.which:
        path = pathlib.Path(config.out_dir) / f"{OUTPUT_NAMES[which]}.json"
        if config.skip_done and _done(path, _settings(config)):
            print(f"{which}: done already ({path}), skipped", flush=True)
            continue
        print(f"{which}: wrote {', '.join(str(p) for p in run_one(config, which))}", flush=True)


def main(argv: Sequence[str]) -> None:
    refuse_arguments(argv)
    run_all(config_from_flags(FLAGS))


def console_main() -> None:
    """``python3 scripts/analyses.py``: flags defined (not at import), then run."""
    start_script(define_flags, main)


if __name__ == "__main__":
    console_main()
