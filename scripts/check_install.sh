#!/usr/bin/env bash
# make check-install: the package as a user gets it, away from this checkout.
#
# In a fresh virtual environment under a temporary directory: a NON-editable
# `pip install` of a copy of the source tree (tracked and untracked, not ignored, files;
# pip's cache is reused, packages come from the configured indexes), then, from an empty
# directory outside the checkout:
#   mmt-train --helpshort, mmt-advtest-others --helpshort, import mmt,
#   mmt-train on a tiny generated MNIST (1 epoch), a 2-step mmt-advtest-iterative on it
#   and mmt-export of it.
# Any failure stops it with "check-install: FAILED: <step>" and a non-zero status.
#
#   scripts/check_install.sh              # PYTHON=python3 by default
#   KEEP=1 scripts/check_install.sh       # keep the temporary directory to look into
set -euo pipefail

PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mmt-check-install.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
  echo "check-install: keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi
CURRENT="setup"
trap 'echo "check-install: FAILED: $CURRENT (status $?)" >&2' ERR

step() { CURRENT=$1; echo "== $1"; }

step "copy the source tree"
# A copy: pip builds in the source directory (build/, *.egg-info), and only what git
# would ship (no .venv, runs or results) should reach the build.
mkdir -p "$TMP/src" "$TMP/work"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
     | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$TMP/src"
else
  (cd "$ROOT" && tar --exclude=./.venv --exclude=./build -cf - .) | tar -xf - -C "$TMP/src"
fi

step "fresh virtual environment"
"$PYTHON" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"

step "pip install (non-editable)"
"$VPY" -m pip install --quiet "$TMP/src"

BIN="$TMP/venv/bin"
cd "$TMP/work"
unset PYTHONPATH
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}

step "modules come from the installed package, not the checkout"
"$VPY" - <<'EOF'
import train_models, advtest_iterative, advtest_others, utils.cli.export_keras, ts_centers
for module in (train_models, advtest_iterative, advtest_others, utils.cli.export_keras,
               ts_centers):
    assert "site-packages" in module.__file__, module.__file__
assert any(ts_centers.DATA_DIR.glob("*.mat")), ts_centers.DATA_DIR  # package data
EOF

# absl ends --help/--helpshort with exit status 1.
step "mmt-train --helpshort"
"$BIN/mmt-train" --helpshort >help.txt || test $? -eq 1
grep -q -- "--batch_size" help.txt
grep -q -- "--epochs" help.txt

step "mmt-advtest-others --helpshort"
"$BIN/mmt-advtest-others" --helpshort >help_others.txt || test $? -eq 1
grep -q -- "--CW_confidence" help_others.txt

step "import mmt"
"$VPY" -c "import mmt; print('mmt.__all__ =', mmt.__all__)"

step "tiny MNIST"
"$VPY" - <<'EOF'
import numpy as np
rng = np.random.default_rng(0)
def split(n):
    y = rng.integers(0, 10, n).astype(np.uint8)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), y
(x_train, y_train), (x_test, y_test) = split(60), split(20)
import os
os.makedirs("data")
np.savez("data/mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
EOF

RUN=(--dataset=mnist --data_dir=data --model_dir=models --version=1 --n=1 --batch_size=20
     --optimizer=Adam --lr=0.001)

step "mmt-train (1 epoch)"
"$BIN/mmt-train" "${RUN[@]}" --epochs=1 --train_size=40 --test_size=20 --verbose=0 \
  --augment=False | tee train.txt
grep -q "weights sha256" train.txt

step "mmt-advtest-iterative (2 PGD steps)"
"$BIN/mmt-advtest-iterative" "${RUN[@]}" --use_advtrain=False --epoch=1 \
  --attack_method=MadryEtAl --target=False --num_iter=2 --eps_256=8 --num_examples=20 \
  --progress=False --results_file=results/pgd.jsonl
test "$(wc -l <results/pgd.jsonl)" -eq 1

step "mmt-export"
"$BIN/mmt-export" "${RUN[@]}" --use_advtrain=False --epoch=1 --out=model.keras
test -s model.keras

CURRENT="done"
echo "check-install: OK"
