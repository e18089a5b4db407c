#!/usr/bin/env bash
# GPU checks in one run, for a machine with an NVIDIA GPU and torch/numba/pytest/
# pytest-benchmark already installed (the project is used from the tree, not installed):
#   OUT=/some/folder bash bench/gpu_check.sh
# Everything is written under a work folder (MNIST_TIERS_OUT), then packed into
# $OUT/gpu-results.tgz: the test log, one JSON per training epoch (batch 64 and 1024,
# resident and DataLoader), the benchmark JSON named by machine, and the CUDA profiles.
# $OUT/summary.txt holds the same console output as the run. The tree itself is not written.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
WORK=$(mktemp -d)
export MNIST_TIERS_OUT="$WORK"
exec > >(tee "$OUT/summary.txt") 2>&1
py=${PYTHON:-python3}
status=0
step() { echo "== $*"; "$@" || { echo "FAILED: $*"; status=1; }; }
train() {  # train OUTFILE ARGS...: one epoch, the JSON line kept
  local out=$1; shift
  echo "== train $*"
  if $py -m implementations.cli train --epochs 1 --no-progress --json "$@" > "$out.log" 2>&1
  then tail -n 1 "$out.log" > "$out"; tail -n 3 "$out.log" | head -n 2
  else echo "FAILED: train $*"; tail -n 5 "$out.log"; status=1; fi
}

$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$WORK/env.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$WORK/env.txt" 2>&1
$py -m implementations.cli tiers | tee -a "$WORK/env.txt"

# 1. the test suite, CUDA tiers included (agreement with the oracle, refusals skip here)
step bash -c "$py -m pytest tests -q -p no:cacheprovider > '$WORK/tests.log' 2>&1"
tail -n 5 "$WORK/tests.log"

# 2. one epoch of every torch tier at batch 64 and 1024 (accuracy and epoch time)
mkdir -p "$WORK/train"
for tier in torch-cpu torch-cuda torch-cuda-graph; do
  for b in 64 1024; do
    train "$WORK/train/train-$tier-b$b.json" --tier "$tier" --batch-size "$b"
  done
done
train "$WORK/train/train-torch-cuda-dataloader-b64.json" --tier torch-cuda --loader dataloader
train "$WORK/train/train-numpy-b64.json" --tier numpy

# 3. the benchmark suite (named by machine), then the profiles of the GPU tiers
step $py -m bench.run
step $py -m implementations.cli profile --tier torch-cuda --tier torch-cuda-graph --no-scalene

tar -czf "$OUT/gpu-results.tgz" -C "$WORK" .
echo "packed: $OUT/gpu-results.tgz ($(du -h "$OUT/gpu-results.tgz" | cut -f1)); status $status"
exit $status
