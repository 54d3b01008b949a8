"""Run identity as plain values: no TensorFlow, no Keras.

:class:`~utils.runs.spec.RunSpec` (what names a training run and where it lives),
:class:`~utils.runs.model_config.ModelConfig` (architecture and loss),
:class:`~utils.runs.advtrain_config.AdvTrainConfig` (adversarial-training settings and
their defaults), the original's directory names (:mod:`utils.runs.naming`) and checkpoint
file names (:mod:`utils.runs.checkpoints`). Importing this package loads no TensorFlow
(an import-linter contract in ``setup.cfg`` keeps it so).
"""
