#!/usr/bin/env bash
# One-command GPU benchmark suite (issue 17), designed for <= 8 minutes on one GPU:
#   - epoch time of ResNet-32 v2 SCE and MMC on Fashion-MNIST, float32 and mixed_float16,
#     steps_per_loop 1 and 50, and the MMC/SCE ratio      -> $OUT/gpu_train.json
#   - PGD-10 and APGD-CE throughput against their gradient floor at batch 50 and 500
#     (bench/attack_throughput.py)                          -> $OUT/gpu_attack_b50.json, _b500
# Usage:   bench/gpu_suite.sh                      (DATA_DIR, OUT, PYTHON may be set)
#          DRY_RUN=1 bench/gpu_suite.sh            (CPU, tiny settings, OUT = a temp dir)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DATA_DIR="${DATA_DIR:-/usr/share/datasets/fashion-mnist}"
if [[ ! -d "$DATA_DIR" ]]; then
  echo "error: no Fashion-MNIST at $DATA_DIR; set DATA_DIR" >&2; exit 2
fi
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  OUT="${OUT:-$(mktemp -d)}"
  export CUDA_VISIBLE_DEVICES=""
  # (float16 convolutions are emulated on a CPU: tiny batches keep mixed_float16 short;
  # an epoch is one step here, so steps_per_loop 1 and 50 would be the same run: one of them)
  TRAIN=(--n=1 --batch_size=5 --train_size=5 --test_size=5 --epochs=2 --steps_per_loop=50 --force)
  ATTACK=(--n=1 --num_iter=2 --rounds=1 --reps=1 --apgd_iter=2 --force)
  BATCHES=(4 8)
else
  OUT="${OUT:-$ROOT/bench/results}"
  TRAIN=()
  ATTACK=(--rounds=3 --reps=2)
  BATCHES=(50 500)
fi
mkdir -p "$OUT"
cd "$ROOT"
start=$SECONDS
"$PYTHON" bench/gpu_train_epochs.py --data_dir="$DATA_DIR" --out="$OUT/gpu_train.json" "${TRAIN[@]}"
# one process, one model, both batch sizes (a result file each)
"$PYTHON" bench/attack_throughput.py --batch_size="${BATCHES[0]},${BATCHES[1]}" \
  --out="$OUT/gpu_attack_b{batch_size}.json" "${ATTACK[@]}"
echo "gpu_suite: wrote $OUT/gpu_train.json and gpu_attack_b{${BATCHES[0]},${BATCHES[1]}}.json in $((SECONDS - start)) s"
