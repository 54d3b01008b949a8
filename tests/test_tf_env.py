"""utils.tf_env: TensorFlow's process settings go in where unset; a value already set wins."""
import os

from utils import tf_env


def test_defaults_fill_only_unset_names(monkeypatch):
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    tf_env.tensorflow_defaults()
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert set(tf_env.DEFAULTS) == {"TF_CPP_MIN_LOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC"}


def test_entry_scripts_set_them_before_tensorflow(monkeypatch):
    """quiet_tensorflow (every entry script's start) puts the defaults in first."""
    from utils.cli import common
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    monkeypatch.setenv("MMC_TF_LOGS", "1")  # no stderr juggling under pytest
    common.quiet_tensorflow()
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
