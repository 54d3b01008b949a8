"""Helpers shared by the entry scripts: quiet start-up, one-line errors, exit statuses.

Exit statuses (``utils.errors``): 2 bad input, 3 non-finite loss/weights/logits, 4 a file
could not be written, 130 interrupted (SIGINT or SIGTERM). Each ends with exactly one
line on stderr and no traceback.

    def define_flags(): ...     # the script's flags (utils.cli.<script>); loads TensorFlow
    def main(argv): ...
    def console_main(): start_script(define_flags, main)   # console script, __main__
    if __name__ == "__main__": console_main()

Importing an entry script defines nothing and loads nothing heavy: its flags and the quiet
TensorFlow start-up happen in :func:`start_script`, so tests and other tools can import it.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags
from absl import logging as absl_logging

from utils.errors import EXIT_INTERRUPTED, DiskWriteError, NonFiniteError, UsageError
from utils.tf_env import tensorflow_defaults

HANDLED = (UsageError, NonFiniteError, DiskWriteError)


def quiet_tensorflow() -> None:
    """Import TensorFlow with stderr (fd 2) sent to /dev/null.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probing) are written before its log
    level is read, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. Set ``MMC_TF_LOGS=1``
    to see them. TensorFlow's settings first (:func:`utils.tf_env.tensorflow_defaults`).
    """
    tensorflow_defaults()
    if os.environ.get("MMC_TF_LOGS") == "1":
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        # Imported here, with stderr closed: TensorFlow's C++ start-up lines print at import.
        import tensorflow as tf
        tf.config.list_physical_devices()  # device probing logs too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def start_script(define_flags: Callable[[], None],
                 main: Callable[[Sequence[str]], None]) -> None:
    """Run an entry script from its command line: TensorFlow imported quietly, then the
    script's flags defined (``define_flags`` imports ``utils.cli``, which loads TensorFlow),
    then :func:`run_main`. What ``python3 train_models.py`` and ``mmt-train`` both call."""
    quiet_tensorflow()
    define_flags()
    run_main(main)


def refuse_arguments(argv: Sequence[str]) -> None:
    """UsageError when an entry script's ``argv`` holds anything but flags (absl leaves
    positional arguments in ``argv[1:]``)."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {list(argv[1:])}; flags look like --name=value")


def fail(message: str, status: int) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``status``."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def handle_signals() -> None:
    """SIGTERM ends the run as Ctrl-C does (a KeyboardInterrupt in the main thread), and
    SIGINT does so even when the parent left it ignored (a background job of a
    non-interactive shell, a pytest-xdist worker): the documented exit 130 then holds."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def call_guarded(main: Callable[[], None]) -> None:
    """Run ``main()``; our errors and interrupts end as one line and their exit status.

    The failed run's frames, which its exception's traceback kept alive (tf.data
    iterators among them), are collected before exiting: left to a later garbage
    collection in an in-process caller (tests, ``scripts/reproduce_cpu.py``), destroying
    such an iterator held that caller up for 60-117 s on 2 cores.
    """
    handle_signals()
    try:
        main()
        return
    except HANDLED as exc:
        message, status = str(exc), exc.exit_status
    except KeyboardInterrupt as exc:
        text = str(exc) if getattr(exc, "exit_status", None) else ""
        message, status = text or "interrupted; nothing was left half-written", EXIT_INTERRUPTED
    gc.collect()  # outside the except clauses: the exception and its frames are unreachable
    fail(message, status)


def _own_flags_to_main_module(flags_module) -> None:
    """Make ``--helpshort`` list the flags defined in ``utils.cli`` for this script."""
    values = flags_module.FLAGS
    main_module = sys.argv[0]
    for module, module_flags in list(values.flags_by_module_dict().items()):
        if module.startswith("utils.") or module.startswith("utils/"):
            for flag in list(module_flags):
                values.register_flag_by_module(main_module, flag)


def run_main(main: Callable[[Sequence[str]], None], argv: "Sequence[str] | None" = None) -> None:
    """``absl.app.run(main)`` with :func:`call_guarded`'s one-line errors and statuses.

    A flag absl cannot parse (unknown enum value, below its bound, unknown flag) also
    gives one line and exit 2. absl INFO lines appear only with ``--verbosity=1``.
    """
    quiet_tensorflow()

    _own_flags_to_main_module(flags)

    def parse_flags(args: Sequence[str]) -> Sequence[str]:
        try:
            return flags.FLAGS(list(args))
        except flags.Error as exc:
            fail(f"{exc}; see --helpshort", 2)

    def wrapped(args: Sequence[str]) -> None:
        verbose = flags.FLAGS["verbosity"].present and flags.FLAGS.verbosity >= 1
        absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
        call_guarded(lambda: main(args))

    app.run(wrapped, argv=list(argv) if argv is not None else None, flags_parser=parse_flags)
