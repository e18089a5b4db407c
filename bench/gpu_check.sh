#!/usr/bin/env bash
# GPU checks in one run, for a machine with an NVIDIA GPU and torch/numba/pytest/
# pytest-benchmark already installed (the project is used from the tree, not installed):
#   OUT=/some/folder bash bench/gpu_check.sh
# Writes under $OUT: the test log, one JSON per CUDA-tier training epoch (batch 64 and 1024,
# resident and DataLoader), the benchmark JSON named by machine, and the CUDA profiles.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
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
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/env.txt" 2>&1

# 1. the test suite, CUDA tiers included (agreement with the oracle, refusals skip here)
step bash -c "$py -m pytest tests -q -p no:cacheprovider > '$OUT/tests.log' 2>&1"
tail -n 5 "$OUT/tests.log"

# 2. one epoch of every torch tier at batch 64 and 1024 (accuracy and epoch time)
for tier in torch-cpu torch-cuda torch-cuda-graph; do
  for b in 64 1024; do
    train "$OUT/train-$tier-b$b.json" --tier "$tier" --batch-size "$b"
  done
done
train "$OUT/train-torch-cuda-dataloader-b64.json" --tier torch-cuda --loader dataloader
train "$OUT/train-numpy-b64.json" --tier numpy

# 3. the benchmark suite (reference run named by machine), then the profiles of the GPU tiers
step $py -m bench.run
cp -r bench/results/* "$OUT/" 2>/dev/null
step $py -m implementations.cli profile --tier torch-cuda --tier torch-cuda-graph --no-scalene
cp -r profiles/reports "$OUT/profiles" 2>/dev/null
exit $status
