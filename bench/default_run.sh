#!/usr/bin/env bash
# Make bench/results/default_run/ again: the README's default run (bash tools/pretrain.sh) and the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/results/default_run bash tools/pretrain.sh --quiet "$@"
python3 - <<'PY' > bench/results/default_run/machine.txt
import os, platform
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
print(f"{cpu}, {os.cpu_count()} cores, CPU fp32")
PY
rm -f bench/results/default_run/*.safetensors   # keep the repository small (the weights are 20+ MB)
