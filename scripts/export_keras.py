r"""Export a trained run (ours or the original's ``model.NNN.h5``) as a Keras 3 ``.keras`` file.

A checkout's command line for the installed ``mmt-export``; flags and behaviour:
:mod:`utils.cli.export_keras`.

    python3 scripts/export_keras.py --dataset=fashion_mnist --version=1 --n=1 \
        --optimizer=Adam --lr=0.001 --use_advtrain=False --epoch=2 --out=mmc.keras
"""
from __future__ import annotations

import pathlib
import sys

# Run as a file (python3 scripts/export_keras.py), the checkout's root is not on sys.path;
# imported as scripts.export_keras, it is (and importing changes nothing).
ROOT = pathlib.Path(__file__).resolve().parents[1]
if __name__ == "__main__" and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.cli.export_keras import (config_from_flags, console_main,  # noqa: E402,F401
                                    define_flags, main)

if __name__ == "__main__":
    console_main()
