#!/usr/bin/env bash
# The GPU half of the study in one run, on a machine with an NVIDIA GPU, from the tree, with
# that machine's own python3 and packages (torch, numba-cuda, pytest, pytest-benchmark; no
# installs, no scalene needed):   OUT=/some/folder bash bench/gpu_check.sh
# It plans to finish within about 7 minutes, and within 9.5 at worst (each step has its own
# time limit, and a device call allows 10), and writes
# nothing into the tree: results go to a work folder, packed after every step (a run cut
# short still brings back what it finished) into $OUT/gpu-results.tgz laid
# out as the repository's bench/results/<machine>/ and profiles/reports/<machine>/
# (`tar -xzf gpu-results.tgz` at the repository root puts them in place for committing);
# $OUT/summary.txt is the console output. Without a GPU it exits 2 at once.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if ! reason=$($py -c "
from implementations import probes
r = probes.cuda_gpu()
print(r or '')
raise SystemExit(1 if r else 0)" 2>&1); then
  echo "gpu_check: nothing to run without a usable CUDA GPU: ${reason:-$py cannot import the project}"
  exit 2
fi
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
WORK=$(mktemp -d)
export MNIST_TIERS_OUT="$WORK"
exec > >(tee "$OUT/summary.txt") 2>&1
machine=$($py -c "from implementations.machine import machine_name as m; print(m())")
BENCH="$WORK/bench/$machine"
mkdir -p "$BENCH"
pack() {  # the results so far, in the committed layout (after every step: a run stopped
  # by the call's time limit still brings back what it finished)
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/bench/results" "$dir/profiles/reports"
  cp -r "$BENCH" "$dir/bench/results/$machine"
  rm -rf "$dir/bench/results/$machine/autosave" "$dir/bench/results/$machine"/.[!.]*
  [ -d "$WORK/profiles/$machine" ] && cp -r "$WORK/profiles/$machine" "$dir/profiles/reports/"
  cp "$WORK/env.txt" "$dir/bench/results/$machine/gpu-env.txt" 2>/dev/null
  tar -czf "$OUT/.gpu-results.tgz" -C "$dir" bench profiles && mv "$OUT/.gpu-results.tgz" \
    "$OUT/gpu-results.tgz"
  rm -rf "$dir"
}
# the tiers come from the registry: the GPU tiers with a launch-floor model (one GPU), and
# those whose compilation takes a minute (a longer training limit, no profile)
GPU_TIERS=$($py -c "from implementations.registry import names, select
print(' '.join(names(select(device='cuda', launch_floor=True))))")
SLOW_COMPILE=" $($py -c "from implementations.registry import TIERS
print(' '.join(t.name for t in TIERS.values() if t.slow_compile))") "
status=0
summary=()
step() {  # step SECONDS LABEL COMMAND...: run with a time limit, remember the outcome
  local limit=$1 label=$2; shift 2
  local t0=$SECONDS
  echo "== [$label] (limit ${limit}s) $*"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  local took=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then summary+=("ok      ${took}s  $label")
  else summary+=("FAILED  ${took}s  $label (exit $rc$([ $rc -eq 124 ] && echo ', time limit'))")
       status=1; fi
  pack
}

cat <<PLAN
gpu_check on $machine: the plan (about 7 minutes; each step's time limit in brackets)
  1. tests: the CUDA kernels on the GPU (tests/cuda_checks.py), then the CUDA tiers'
     cases of the suites that compare every tier with the float64 oracle      [60 s each]
  2. one 10-epoch training of each GPU tier: $GPU_TIERS   [30 s each, compile 60 s]
  3. the GPU targets: launch floor, epochs against it, agreement with numpy        [80 s]
  4. torch.compile modes for the compiled CUDA tier's choice                        [50 s]
  5. the benchmark suite (--quick: every tier at batch 64, the CPU tiers on this
     machine's cores in the same run; the epochs are step 3's)                      [90 s]
  6. phase breakdowns and torch.profiler traces of the GPU tiers but the compiled
     one (its compile would take the step's time)                                   [40 s]
  7. the report, then the results packed into $OUT/gpu-results.tgz                 [20 s]
PLAN
{ $py -c "import torch, numba, numpy; print('torch', torch.__version__, '| numba', numba.__version__, '| numpy', numpy.__version__)"
  $py -c "import numba_cuda; print('numba_cuda', numba_cuda.__version__)" 2>/dev/null
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $py -m mnist_tiers.cli tiers
  # what the later steps import, checked now rather than failing late
  $py -c "
import importlib
for m in ('tqdm', 'threadpoolctl', 'matplotlib', 'pytest_benchmark', 'triton', 'numba_cuda'):
    try:
        importlib.import_module(m)
    except ImportError as e:
        print('MISSING', m, '-', e)"; } 2>&1 | tee "$WORK/env.txt"

step 60 "tests: CUDA kernels" $py -m pytest -q -p no:cacheprovider --benchmark-disable \
  tests/cuda_checks.py
step 60 "tests: CUDA tiers vs the oracle" $py -m pytest -q -p no:cacheprovider \
  --benchmark-disable -k cuda \
  tests/test_tiers_agree.py tests/test_torch.py tests/test_formats.py tests/test_widths.py

export py BENCH
train() {  # 10 epochs of one tier, its JSON kept under the committed name
  $py -m mnist_tiers.cli train --tier "$1" --epochs 10 --no-progress --json \
    > "$BENCH/.train-$1.tmp" && mv "$BENCH/.train-$1.tmp" "$BENCH/train-$1.json" \
    && tail -n 1 "$BENCH/train-$1.json" | $py -c "
import json, sys; d = json.loads(sys.stdin.read())
print(f\"   {d['tier']}: test accuracy {100 * d['test_accuracy'][-1]:.2f}% after 10 epochs, \"
      f\"epoch {min(d['epoch_seconds']):.3f} s (best)\")"
}
export -f train  # so that `timeout` (a separate program) can run it through bash
for t in $GPU_TIERS; do
  limit=30; [[ "$SLOW_COMPILE" == *" $t "* ]] && limit=60
  step $limit "train $t" bash -c 'train "$1"' _ "$t"
done
step 80 "GPU targets" $py -m bench.studies.gpu_floor
step 50 "compile modes" $py -m bench.studies.compile_modes
# the quick selection, saved as this machine's latest.json (what the report reads)
step 90 "benchmarks" $py -m bench.suite.run --quick --benchmark-max-time=0.1 \
  --benchmark-min-rounds=3 --benchmark-json "$BENCH/latest.json"
prof_args=(); for t in $GPU_TIERS; do
  [[ "$SLOW_COMPILE" == *" $t "* ]] || prof_args+=(--tier "$t"); done
step 40 "profiles" $py -m mnist_tiers.cli profile "${prof_args[@]}" --no-scalene
step 20 "report" $py -m mnist_tiers.cli report --results "$BENCH/latest.json" --out "$BENCH"

echo
echo "== summary ($machine, ${SECONDS}s)"
printf '  %s\n' "${summary[@]}"
[ -f "$BENCH/gpu-floor.json" ] && $py -c "
import json; d = json.load(open('$BENCH/gpu-floor.json'))
for t, r in d['tiers'].items():
    fl = f\", {r['x_floor']:.1f}x its floor\" if 'x_floor' in r else ''
    print(f\"  {t:<18} epoch {1e3 * r['epoch_s']:8.2f} ms{fl}\")
for v in d['verdicts']:
    print(f\"  {'met ' if v['met'] else 'MISS'} {v['target']}: {v['value']}\")"
echo "packed: $OUT/gpu-results.tgz ($(du -h "$OUT/gpu-results.tgz" | cut -f1)); status $status"
exit $status
