#!/usr/bin/env bash
# The seed-to-seed spread of the attacks whose random draws changed (issue 23: per-example
# seeds), on the fixed checkpoint of records_before_after.sh, with both checkouts.
#   bash reports/refactor/seed_spread.sh BEFORE_CHECKOUT AFTER_CHECKOUT OUT
# OUT is records_before_after.sh's output folder (its checkpoint is reused). Runs PGD-10
# and the autoattack-lite cascade with --seed=0,1,2 on each side, and the demo's PGD-10
# row (500 images, batches of 100) on the MMC-10 model the BEFORE demo trained, and prints
# adv_accuracy per seed, the range of the BEFORE seeds, and whether each AFTER figure
# lies inside it.
set -euo pipefail
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); OUT=$(realpath -m "$3")
PY=${PYTHON:-$AFTER/.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2
CK=$OUT/checkpoint
[ -d "$CK/trained_models" ] || { echo "no checkpoint in $CK: run records_before_after.sh first" >&2; exit 2; }
M="--dataset=fashion_mnist --version=1 --n=1 --mean_var=10 --use_MMLDA=True --use_ball=True
   --use_advtrain=False --optimizer=Adam --lr=0.001 --model_dir=$CK --epoch=1 --target=False
   --eps_256=8 --num_iter=10 --progress=False"
for side in before after; do
  dir=$BEFORE; [ $side = after ] && dir=$AFTER
  R=$OUT/spread_$side; mkdir -p "$R"
  for seed in 0 1 2; do
    [ -f "$R/pgd_s$seed.jsonl" ] || (cd "$dir" && $PY advtest_iterative.py $M \
      --attack_method=MadryEtAl --num_examples=100 --seed=$seed \
      --results_file="$R/pgd_s$seed.jsonl") >> "$R/log.txt" 2>&1
    [ -f "$R/aa_s$seed.jsonl" ] || (cd "$dir" && $PY advtest_iterative.py $M \
      --attack_method=AutoAttack --num_examples=50 --seed=$seed \
      --results_file="$R/aa_s$seed.jsonl") >> "$R/log.txt" 2>&1
    [ -f "$R/demo_s$seed.jsonl" ] || (cd "$dir" && $PY advtest_iterative.py \
      --dataset=fashion_mnist --version=1 --n=1 --mean_var=10 --use_MMLDA=True \
      --use_ball=True --use_advtrain=False --optimizer=Adam --lr=0.001 --batch_size=50 \
      --model_dir="$OUT/before/demo" --epoch=2 --target=False --eps_256=8 --num_iter=10 \
      --progress=False --attack_method=MadryEtAl --num_examples=500 --eval_batch_size=100 \
      --seed=$seed --results_file="$R/demo_s$seed.jsonl") >> "$R/log.txt" 2>&1
  done
done
$PY - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for attack in ("pgd", "aa", "demo"):
    acc = {side: [json.loads((out / f"spread_{side}" / f"{attack}_s{s}.jsonl").read_text()
                             .splitlines()[-1])["adv_accuracy"] for s in range(3)]
           for side in ("before", "after")}
    lo, hi = min(acc["before"]), max(acc["before"])
    inside = all(lo <= a <= hi for a in acc["after"])
    print(f"{attack}: before seeds 0,1,2 {acc['before']} (range {lo:g}-{hi:g}); "
          f"after seeds 0,1,2 {acc['after']}; after inside the before range: {inside}")
PY
