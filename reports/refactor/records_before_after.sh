#!/usr/bin/env bash
# Same records before and after a refactor, on one fixed checkpoint (issue 14).
#   bash reports/refactor/records_before_after.sh BEFORE_CHECKOUT AFTER_CHECKOUT OUT
# Trains one small MMC-10 model once (ResNet-8 v1, 1 epoch, 2,000 Fashion-MNIST images,
# seed 0) with the BEFORE code, then runs PGD-10, the autoattack-lite cascade and C&W-L2
# on it, and the demo, with each checkout, and diffs the records (scripts/diff_records.py
# ignores only time, command lines, paths and versions).
set -euo pipefail
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); OUT=$(realpath -m "$3")
PY=${PYTHON:-$AFTER/.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2
CK=$OUT/checkpoint
M="--dataset=fashion_mnist --version=1 --n=1 --mean_var=10 --use_MMLDA=True --use_ball=True
   --use_advtrain=False --optimizer=Adam --lr=0.001 --model_dir=$CK"
mkdir -p "$OUT"
[ -d "$CK/trained_models" ] || (cd "$BEFORE" && $PY train_models.py $M --epochs=1 \
  --train_size=2000 --test_size=500 --seed=0 --verbose=0)
for side in before after; do
  dir=$BEFORE; [ $side = after ] && dir=$AFTER
  R=$OUT/$side; mkdir -p "$R"
  [ -f "$R/done" ] && continue  # a side already run (delete OUT/after to rerun it)
  (cd "$dir" &&
   $PY advtest_iterative.py $M --epoch=1 --attack_method=MadryEtAl --target=False --num_iter=10 \
     --eps_256=8 --num_examples=100 --results_file="$R/pgd.jsonl" &&
   $PY advtest_iterative.py $M --epoch=1 --attack_method=AutoAttack --target=False --num_iter=10 \
     --eps_256=8 --num_examples=50 --results_file="$R/aa.jsonl" &&
   $PY advtest_others.py $M --epoch=1 --attack_method=CarliniWagnerL2 --target=False \
     --num_examples=20 --CW_binary_search_steps=2 --CW_max_iterations=30 \
     --results_file="$R/cw.jsonl" &&
   $PY scripts/demo.py --out_dir="$R/demo") > "$R/log.txt" 2>&1 && touch "$R/done"
done
status=0
for f in pgd.jsonl aa.jsonl cw.jsonl demo/summary.json; do
  echo "== $f"
  $PY "$AFTER/scripts/diff_records.py" --shared_only "$OUT/before/$f" "$OUT/after/$f" || status=1
done
exit $status
