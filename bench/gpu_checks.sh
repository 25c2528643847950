#!/usr/bin/env bash
# The GPU checks, as one script for one short session on a GPU machine (at most 13 minutes: the three steps' timeouts,
# SMOKE_TIMEOUT 150 s + SPEED_TIMEOUT 150 s + RESULTS_TIMEOUT 460 s, plus the start):
#   1. bench/droppos_speed.py on CUDA: images/s and the share of the matmul peak in fp32, bf16 and fp16 for the laptop
#      recipe, the paper recipe on the digits and ViT-B/16 at 224 px;
#   2. bench/results.py --device cuda: the small-scale results table with longer schedules (starts no job after
#      DEADLINE seconds; the table holds the seeds whose jobs all finished).
# Results go to $OUT (default bench/out/gpu); copy them into bench/results/ to commit them.
#     bash bench/gpu_checks.sh                  # on a machine with the package installed
# On a bare machine with torch but without fastai, the wheels in .whl/ (fastai, fastcore, fastprogress 1.0.3, which
# does not need fasthtml, ...) are installed into /tmp/site first and the checkout is put on PYTHONPATH.
set -u
OUT=${OUT:-bench/out/gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONWARNINGS=ignore
PY=${PYTHON:-python3}
if [ -d .whl ] && ! $PY -c 'import fastai' 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c 'import sys, torch, timm, fastai; print(sys.version.split()[0], "torch", torch.__version__, "timm", timm.__version__, "fastai", fastai.__version__, "cuda", torch.cuda.is_available())'
  nproc; } 2>&1 | tee "$OUT/gpu.txt"
# a smoke test of every command on CUDA first (1 epoch, few images): if it fails, stop here with the logs
timeout ${SMOKE_TIMEOUT:-150} $PY bench/results.py --device cuda --quick --seeds 0 --jobs 12 --fresh --work /tmp/smoke \
  --out /tmp/smoke/out > "$OUT/smoke.log" 2>&1
if [ ! -f /tmp/smoke/out/results.md ]; then
  echo "SMOKE TEST FAILED"; grep -v "done:" "$OUT/smoke.log" | tail -60; tar czf "$OUT/smoke_logs.tgz" -C /tmp/smoke logs; exit 1
fi
echo "smoke test passed: $(grep -c 'done:' "$OUT/smoke.log") jobs"
timeout ${SPEED_TIMEOUT:-150} $PY bench/droppos_speed.py --device cuda --precision fp32,bf16,fp16 --steps 20 \
  --out "$OUT/droppos_speed_cuda.json" 2>&1 | tee "$OUT/droppos_speed_cuda.md"
timeout ${RESULTS_TIMEOUT:-460} $PY bench/results.py --device cuda --jobs ${JOBS:-8} --deadline ${DEADLINE:-300} --fresh \
  --work /tmp/small_scale_cuda --out "$OUT/small_scale_cuda" 2>&1 | tee "$OUT/results.log" | grep -v "done:"
[ -f "$OUT/small_scale_cuda/results.md" ] || $PY bench/results.py --device cuda --table-only --fresh \
  --work /tmp/small_scale_cuda --out "$OUT/small_scale_cuda" 2>&1 | tail -5
tar czf "$OUT/small_scale_cuda_runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.png' -C /tmp small_scale_cuda
ls -la "$OUT" "$OUT/small_scale_cuda"
